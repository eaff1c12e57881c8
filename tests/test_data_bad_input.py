"""Bad data gives one clean line: ImageFolder layouts, paths, one-class sets, mixed colour modes."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import biofa.data as bd


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOFA_CACHE", str(tmp_path / "cache"))


def tree(root: Path, spec: dict[str, dict[str, list[str]]], modes: dict | None = None) -> Path:
    """``{split: {class: [file, ...]}}`` of 4x5 images; ``modes[path]`` overrides "L"."""
    rng = np.random.default_rng(0)
    for split, by_class in spec.items():
        for cls, names in by_class.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for name in names:
                mode = (modes or {}).get(f"{split}/{cls}/{name}", "L")
                shape = (4, 5) if mode == "L" else (4, 5, 3)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                    root / split / cls / name)
    return root


def zipped(src: Path, dest: Path, folders: bool = True) -> Path:
    with zipfile.ZipFile(dest, "w") as z:
        for p in sorted(src.rglob("*")):
            if p.is_file() or folders:
                z.write(p, p.relative_to(src).as_posix())
    return dest


TWO = {"a": ["0.png", "1.png"], "b": ["2.png"]}


def one_line_error(data: str, match: str, **kw) -> str:
    with pytest.raises(ValueError, match=match) as info:
        bd.load(data, **kw)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("as_zip", [False, True])
def test_missing_test_or_train_folder_says_which(tmp_path, as_zip, stream):
    only_train = tree(tmp_path / "only_train", {"train": TWO})
    only_test = tree(tmp_path / "only_test", {"test": TWO})
    if as_zip:
        only_train = zipped(only_train, tmp_path / "only_train.zip")
        only_test = zipped(only_test, tmp_path / "only_test.zip")
    msg = one_line_error(str(only_train), "has no test/ folder next to train/", stream=stream)
    assert str(only_train) in msg and "or test" not in msg
    one_line_error(str(only_test), "has no train/ folder next to test/", stream=stream)


def test_no_layout_at_all_and_ambiguous_layouts(tmp_path):
    flat = tree(tmp_path / "flat", {"x": TWO})
    one_line_error(str(flat), r"has no train/ or test/ folder; it must hold train/<class>")
    two = tmp_path / "two"
    tree(two / "p", {"train": TWO, "test": TWO})
    tree(two / "q", {"train": TWO, "test": TWO})
    one_line_error(str(two), r"found 2 candidates: p/, q/")


@pytest.mark.parametrize("as_zip", [False, True])
def test_empty_class_folder_is_named(tmp_path, as_zip):
    root = tree(tmp_path / "set", {"train": TWO, "test": TWO})
    (root / "train" / "c").mkdir()
    (root / "test" / "b" / "notes.txt").unlink(missing_ok=True)
    (root / "train" / "d").mkdir()
    (root / "train" / "d" / "readme.txt").write_text("not an image")
    data = zipped(root, tmp_path / "set.zip") if as_zip else root
    msg = one_line_error(str(data), r"class folder train/c/, train/d/ holds no images")
    assert str(data) in msg


def test_split_folder_without_class_folders(tmp_path):
    root = tree(tmp_path / "set", {"train": TWO})
    (root / "test").mkdir()
    (root / "test" / "stray.png").write_bytes(b"")
    one_line_error(str(root), r"test/ holds no class folders")


@pytest.mark.parametrize("stream", [False, True])
def test_one_class_is_refused(tmp_path, stream):
    root = tree(tmp_path / "cats", {"train": {"cat": ["0.png", "1.png"]},
                                     "test": {"cat": ["2.png"]}})
    msg = one_line_error(str(root), r"has one class \(train/cat/\); a classifier needs at least",
                         stream=stream)
    assert str(root.name) in msg


def test_paths_that_do_not_exist_or_are_not_zips(tmp_path):
    missing = tmp_path / "no" / "such.zip"
    msg = one_line_error(str(missing), "no such file or directory")
    assert str(missing) in msg
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for stream in (False, True):
        msg = one_line_error(str(text), "is neither a directory nor a .zip archive",
                             stream=stream)
        assert str(text) in msg
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"PK\x05\x06" + b"\0" * 10)  # an end-of-archive record and nothing else
    one_line_error(str(fake), "fake.zip")


def test_undecodable_image_is_named(tmp_path):
    root = tree(tmp_path / "set", {"train": TWO, "test": TWO})
    (root / "train" / "a" / "0.png").write_bytes(b"not a png")
    one_line_error(str(root), r"cannot decode image .*train/a/0.png")


def test_mixed_greyscale_and_colour_zip_warns_and_reads_rgb(tmp_path):
    colour = {"train/b/2.png": "RGB", "test/a/0.png": "RGB"}
    src = tree(tmp_path / "src", {"train": TWO, "test": TWO}, colour)
    archive = zipped(src, tmp_path / "mixed.zip")
    with pytest.warns(UserWarning, match=r"mixes 4 greyscale and 2 colour images.*RGB") as rec:
        ds = bd.load(str(archive))
    assert len(rec) == 1 and str(archive) in str(rec[0].message)
    assert ds.input_shape == (3, 4, 5) and ds.train_x.shape == (3, 3, 4, 5)
    grey = np.array(Image.open(src / "train" / "a" / "0.png"))
    assert torch.equal(ds.train_x[0], torch.from_numpy(grey).expand(3, -1, -1))  # replicated
    rgb = np.array(Image.open(src / "train" / "b" / "2.png"))
    assert torch.equal(ds.train_x[2], torch.from_numpy(rgb).permute(2, 0, 1))
    with pytest.warns(UserWarning, match="mixes 4 greyscale and 2 colour"):
        again = bd.load(str(archive))  # from the cache: still says so
    assert torch.equal(again.train_x, ds.train_x)
    with pytest.warns(UserWarning, match=r"mixes 4 greyscale and 2 colour images \(in a sample"):
        streamed = bd.load(str(archive), stream=True)
    streamed = __import__("dataclasses").replace(streamed, workers=0)
    assert streamed.mode == "RGB" and streamed.input_shape == (3, 4, 5)
    x, _ = streamed.train_examples(torch.arange(3))
    assert torch.equal(x, ds.train_x)


def test_grey_train_and_colour_test_become_rgb_in_both(tmp_path):
    src = tree(tmp_path / "src", {"train": TWO, "test": TWO},
               {f"test/{c}/{n}": "RGB" for c, ns in TWO.items() for n in ns})
    with pytest.warns(UserWarning, match="mixes 3 greyscale and 3 colour"):
        ds = bd.load(str(src))
    assert ds.train_x.shape[1] == ds.test_x.shape[1] == 3


def test_uniform_sets_do_not_warn(tmp_path):
    src = tree(tmp_path / "src", {"train": TWO, "test": TWO})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bd.load(str(src)).input_shape == (1, 4, 5)
        assert bd.load(str(src), stream=True).input_shape == (1, 4, 5)
