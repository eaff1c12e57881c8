"""Tests for biofa.data: loaders, deterministic batching, augmentation, normalisation, caching."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import biofa.data as bd
from biofa.data import imagefolder
from biofa.data.augmentation import crop_flip, draw
from biofa.data.normalization import channel_stats

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def digits() -> bd.InMemoryDataSet:
    return bd.load("digits")


def _synthetic(
    n: int = 103, c: int = 3, h: int = 6, w: int = 5, seed: int = 0
) -> bd.InMemoryDataSet:
    """uint8 images whose label is their own index, so batches can be traced back."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=g)
    y = torch.arange(n)
    mean, std = channel_stats(x)
    test_x, test_y = x[:7].clone(), y[:7].clone()
    return bd.InMemoryDataSet("synthetic", x, y, test_x, test_y, ("a",) * n, mean, std)


def _all(it):
    xs, ys = zip(*it, strict=True)
    return list(xs), list(ys)


# ------------------------------------------------------------------------------------------ digits
def test_digits_shapes_dtypes_range(digits):
    assert digits.name == "digits"
    assert digits.train_x.shape == (1437, 1, 8, 8) and digits.test_x.shape == (360, 1, 8, 8)
    assert digits.train_x.dtype == torch.float32 and digits.train_y.dtype == torch.int64
    assert digits.test_y.shape == (360,) and digits.test_y.dtype == torch.int64
    for x in (digits.train_x, digits.test_x):
        assert x.min() >= 0 and x.max() <= 1 and x.max() == 1
    assert digits.classes == tuple(str(k) for k in range(10))
    assert digits.num_classes == 10 and digits.input_shape == (1, 8, 8)


def test_digits_split_is_stratified_complete_and_fixed(digits):
    from sklearn.datasets import load_digits

    ref = load_digits()
    total = np.bincount(ref.target, minlength=10)
    test = np.bincount(digits.test_y.numpy(), minlength=10)
    train = np.bincount(digits.train_y.numpy(), minlength=10)
    np.testing.assert_array_equal(train + test, total)
    assert np.all(np.abs(test - 360 * total / total.sum()) < 1)  # proportional to class sizes
    # every original image lands in exactly one split (compare sorted pixel rows)
    both = torch.cat([digits.train_x, digits.test_x]).reshape(1797, 64).numpy() * 16
    ref_rows = ref.data.astype(np.float32)
    assert sorted(map(tuple, both.round())) == sorted(map(tuple, ref_rows))
    again = bd.load("digits")
    for k in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(again, k), getattr(digits, k))


# ------------------------------------------------------------------------------------ batching
def test_train_batches_cover_every_example_once():
    d = _synthetic()
    xs, ys = _all(d.train_batches(10, seed=3, epoch=0))
    assert [len(y) for y in ys] == [10] * 10 + [3] and d.steps_per_epoch(10) == 11
    order = torch.cat(ys)
    assert torch.equal(order.sort().values, torch.arange(103))
    assert not torch.equal(order, torch.arange(103))  # shuffled
    x = torch.cat(xs)
    assert x.dtype == torch.float32 and torch.equal(x, d.normalize(d.train_x[order]))

    xs, ys = _all(d.train_batches(10, seed=3, epoch=0, drop_last=True))
    assert [len(y) for y in ys] == [10] * 10 and d.steps_per_epoch(10, drop_last=True) == 10
    assert torch.equal(torch.cat(ys), order[:100])


def test_train_batches_deterministic_in_seed_and_epoch():
    d = _synthetic()

    def order(seed, epoch):
        return torch.cat([y for _, y in d.train_batches(16, seed=seed, epoch=epoch)])

    assert torch.equal(order(1, 2), order(1, 2))
    assert not torch.equal(order(1, 2), order(1, 3))
    assert not torch.equal(order(1, 2), order(2, 2))


@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_start_batch_gives_the_tail(augment, drop_last):
    d = _synthetic()
    kw = dict(seed=5, epoch=7, augment=augment, drop_last=drop_last)
    full = list(d.train_batches(8, **kw))
    for k in (0, 1, 5, len(full) - 1, len(full)):
        tail = list(d.train_batches(8, start_batch=k, **kw))
        assert len(tail) == len(full) - k
        for (xa, ya), (xb, yb) in zip(tail, full[k:], strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_augmented_batches_keep_order_and_change_pixels():
    d = _synthetic(h=8, w=8)
    plain = list(d.train_batches(32, seed=0, epoch=1))
    aug = list(d.train_batches(32, seed=0, epoch=1, augment=True))
    assert all(torch.equal(ya, yb) for (_, ya), (_, yb) in zip(plain, aug, strict=True))
    assert not torch.equal(torch.cat([x for x, _ in plain]), torch.cat([x for x, _ in aug]))


def test_test_batches_in_order_normalized(digits):
    xs, ys = _all(digits.test_batches(100))
    assert [len(y) for y in ys] == [100, 100, 100, 60]
    assert torch.equal(torch.cat(ys), digits.test_y)
    assert torch.equal(torch.cat(xs), digits.normalize(digits.test_x))


def test_batches_live_on_the_data_device(digits):
    d = digits.to("meta")  # a device without data: checks that nothing falls back to the CPU
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    assert digits.train_x.device.type == "cpu"
    for x, y in (
        next(d.train_batches(16, seed=0, epoch=0, augment=True)),
        next(d.test_batches(16)),
    ):
        assert x.device.type == y.device.type == "meta" and x.dtype == torch.float32


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        next(_synthetic().train_batches(0, seed=0, epoch=0))


# -------------------------------------------------------------------------------- augmentation
def _reference_crop_flip(x, dy, dx, flip, p):
    out = []
    for n in range(len(x)):
        xp = F.pad(x[n], (p, p, p, p))
        crop = xp[:, int(dy[n]) : int(dy[n]) + x.shape[2], int(dx[n]) : int(dx[n]) + x.shape[3]]
        out.append(crop.flip(-1) if flip[n] else crop)
    return torch.stack(out)


@pytest.mark.parametrize("padding", [0, 2, 4])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_augment_matches_per_example_reference(padding, dtype):
    x = torch.randint(1, 256, (64, 3, 5, 7)).to(dtype)
    out = bd.augment_crop_flip(x, torch.Generator().manual_seed(11), padding=padding)
    dy, dx, flip = draw(len(x), padding, torch.Generator().manual_seed(11))
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.equal(out, _reference_crop_flip(x, dy, dx, flip, padding))


def test_augment_draws_are_spread():
    dy, dx, flip = draw(4000, 4, torch.Generator().manual_seed(0))
    assert set(dy.tolist()) == set(dx.tolist()) == set(range(9))
    assert 0.45 < flip.float().mean() < 0.55


def test_crop_flip_by_hand():
    img = torch.tensor([[[[1, 2, 3], [4, 5, 6]]]], dtype=torch.uint8).repeat(4, 1, 1, 1)
    dy, dx = torch.tensor([0, 2, 1, 1]), torch.tensor([0, 2, 1, 0])
    flip = torch.tensor([False, True, True, False])
    out = crop_flip(img, dy, dx, flip, padding=1)
    expected = [
        [[0, 0, 0], [0, 1, 2]],  # shifted down-right by one
        [[0, 6, 5], [0, 0, 0]],  # shifted up-left, then mirrored
        [[3, 2, 1], [6, 5, 4]],  # centred crop, mirrored
        [[0, 1, 2], [0, 4, 5]],  # shifted right by one
    ]
    assert torch.equal(out[:, 0], torch.tensor(expected, dtype=torch.uint8))


# ------------------------------------------------------------------------------- normalization
def test_normalize_train_set_mean0_std1(digits):
    z = digits.normalize(digits.train_x)
    assert z.dtype == torch.float32
    assert z.mean().abs() < 1e-5 and abs(z.std(unbiased=False) - 1) < 1e-5
    assert digits.train_x.max() == 1  # the float input was not modified in place


def test_channel_stats_and_normalize_uint8():
    d = _synthetic(n=50, c=3)
    ref = d.train_x.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(d.mean, ref.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(d.std, ref.std(axis=(0, 2, 3)), rtol=1e-12)
    z = d.normalize(d.train_x).double()
    np.testing.assert_allclose(z.mean((0, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(z.std((0, 2, 3), unbiased=False), 1, atol=1e-6)


# --------------------------------------------------------------------------------- ImageFolder
def _write_tree(root: Path, mode: str = "L") -> dict:
    """train/{b,a,c}, test/{a,b}: known pixels, odd file names, a stray file and a hidden dir."""
    rng = np.random.default_rng(0)
    shape = (4, 5) if mode == "L" else (4, 5, 3)
    files = {
        "train": {"b": ["2.png", "10.png"], "a": ["x.png"], "c": ["sub/0.png", "1.png"]},
        "test": {"a": ["5.png"], "b": ["3.png", "4.png"]},
    }
    pixels = {}
    for split, by_class in files.items():
        for cls, names in by_class.items():
            for name in names:
                arr = rng.integers(0, 256, shape, dtype=np.uint8)
                path = root / split / cls / name
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr, mode).save(path)
                pixels[f"{split}/{cls}/{name}"] = arr
    (root / "train" / "a" / "notes.txt").write_text("not an image")
    (root / "train" / ".ipynb_checkpoints").mkdir()
    (root / "train" / ".ipynb_checkpoints" / "y.png").write_bytes(b"")
    return pixels


def _expected(pixels: dict, split: str, order: list[tuple[str, str]]):
    classes = ["a", "b", "c"]
    arrs = [pixels[f"{split}/{c}/{n}"] for c, n in order]
    x = torch.from_numpy(np.stack(arrs))
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    return x, torch.tensor([classes.index(c) for c, _ in order])


TRAIN_ORDER = [("a", "x.png"), ("b", "10.png"), ("b", "2.png"), ("c", "1.png"), ("c", "sub/0.png")]
TEST_ORDER = [("a", "5.png"), ("b", "3.png"), ("b", "4.png")]


def _zip(src: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w") as z:
        for p in sorted(src.rglob("*")):
            z.write(p, prefix + p.relative_to(src).as_posix())
    return dest


def _check(ds: bd.InMemoryDataSet, pixels: dict):
    assert ds.classes == ("a", "b", "c") and ds.train_x.dtype == torch.uint8
    for split, order in (("train", TRAIN_ORDER), ("test", TEST_ORDER)):
        x, y = _expected(pixels, split, order)
        assert torch.equal(getattr(ds, f"{split}_x"), x)
        assert torch.equal(getattr(ds, f"{split}_y"), y)
    ref = ds.train_x.double() / 255
    np.testing.assert_allclose(ds.mean, ref.mean((0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_imagefolder_dir_and_zip(tmp_path, monkeypatch, mode):
    monkeypatch.setenv("BIOFA_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "tiny"
    pixels = _write_tree(src, mode)
    before = sorted(p for p in tmp_path.rglob("*"))
    ds = bd.load(str(src))
    assert ds.name == "tiny" and ds.input_shape == ((1 if mode == "L" else 3), 4, 5)
    _check(ds, pixels)
    flat = _zip(src, tmp_path / "flat.zip")
    nested = _zip(src, tmp_path / "nested.zip", prefix="tiny/")
    _check(bd.load(str(flat)), pixels)
    _check(bd.load(str(nested)), pixels)
    created = set(tmp_path.rglob("*")) - set(before) - {flat, nested}
    assert all(p.is_relative_to(tmp_path / "cache") for p in created)  # nothing in the sources
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 3 and all(n.startswith("imagefolder-") for n in cached)


def test_imagefolder_cache_hit_and_invalidation(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOFA_CACHE", str(tmp_path / "cache"))
    pixels = _write_tree(tmp_path / "src")
    archive = _zip(tmp_path / "src", tmp_path / "set.zip")
    first = bd.load(str(archive))
    (cache_file,) = (tmp_path / "cache").iterdir()

    def fail(*args, **kwargs):
        raise AssertionError("decoder called although the cache should be used")

    real = imagefolder._decode_images
    monkeypatch.setattr(bd.imagefolder, "_decode_images", fail)
    second = bd.load(str(archive))
    _check(second, pixels)
    assert torch.equal(first.train_x, second.train_x)
    # changing the archive (size/mtime) invalidates the entry: decoded again
    _zip(tmp_path / "src", archive, prefix="again/")
    os.utime(archive, ns=(1, 1))
    with pytest.raises(AssertionError, match="decoder called"):
        bd.load(str(archive))
    monkeypatch.setattr(bd.imagefolder, "_decode_images", real)
    _check(bd.load(str(archive)), pixels)
    assert len(list((tmp_path / "cache").iterdir())) == 2 and cache_file.exists()


def test_imagefolder_bad_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOFA_CACHE", str(tmp_path / "cache"))
    (tmp_path / "flat" / "a").mkdir(parents=True)
    Image.new("L", (3, 3)).save(tmp_path / "flat" / "a" / "0.png")
    with pytest.raises(ValueError, match="train/<class>"):
        bd.load(str(tmp_path / "flat"))
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ValueError, match="neither a directory nor a .zip"):
        bd.load(str(tmp_path / "f.txt"))


@pytest.mark.slow
def test_shared_mnist_zip():
    path = SHARED_DATA / "mnist-png.zip"
    if not path.exists():
        pytest.skip(f"{path} not present")
    ds = bd.load(str(path))
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.train_x.dtype == torch.uint8 and ds.classes == tuple(str(k) for k in range(10))
    assert abs(ds.mean[0] - 0.1307) < 5e-4 and abs(ds.std[0] - 0.3081) < 5e-4
    assert torch.bincount(ds.test_y).tolist()[:3] == [980, 1135, 1032]


# --------------------------------------------------------------------------------------- errors
def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="digits, mnist, fashion_mnist, cifar10, svhn"):
        bd.load("imagenet-but-not-a-path")


@pytest.mark.parametrize(
    ("name", "where"), [("mnist", "MNIST/raw"), ("cifar10", ""), ("fashion_mnist", "FashionMNIST")]
)
def test_torchvision_offline_error(tmp_path, monkeypatch, name, where):
    pytest.importorskip("torchvision")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network (simulated)")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("BIOFA_DATA", str(tmp_path / "data"))
    with pytest.raises(bd.DataNotFoundError) as info:
        bd.load(name)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    assert "\n" not in msg and "ImageFolder" in msg
    assert str(tmp_path / "data" / where) in msg
    with pytest.raises(bd.DataNotFoundError, match=str(tmp_path / "root")):
        bd.load(name, root=str(tmp_path / "root"))


def _fake_torchvision_files(name: str, root: Path, monkeypatch) -> dict:
    """Tiny files in the layout torchvision reads; returns the expected (N, C, H, W) arrays."""
    rng = np.random.default_rng(1)
    sizes = {"train": 6, "test": 4}
    hw, c = (28, 1) if "mnist" in name else (32, 3)
    want = {s: rng.integers(0, 256, (n, c, hw, hw), dtype=np.uint8) for s, n in sizes.items()}
    want.update({f"{s}_y": rng.integers(0, 10, n) for s, n in sizes.items()})
    if "mnist" in name:
        raw = root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw"
        raw.mkdir(parents=True)
        for s, prefix in (("train", "train"), ("test", "t10k")):
            n = sizes[s]
            head = np.array([0x803, n, hw, hw], ">i4").tobytes()
            (raw / f"{prefix}-images-idx3-ubyte").write_bytes(head + want[s].tobytes())
            head = np.array([0x801, n], ">i4").tobytes()
            labels = want[f"{s}_y"].astype(np.uint8).tobytes()
            (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(head + labels)
    elif name == "cifar10":
        import pickle

        import torchvision.datasets.cifar as tv_cifar

        monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        names = [f"data_batch_{k}" for k in range(1, 6)]
        for k, fname in enumerate(names + ["test_batch"]):
            s, part = ("test", slice(None)) if k == 5 else ("train", slice(k, k + 1 + (k == 4)))
            entry = {"data": want[s][part].reshape(-1, 3072), "labels": list(want[f"{s}_y"][part])}
            (folder / fname).write_bytes(pickle.dumps(entry))
        meta = {"label_names": [f"class{k}" for k in range(10)]}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    else:
        import scipy.io
        import torchvision.datasets.svhn as tv_svhn

        monkeypatch.setattr(tv_svhn, "check_integrity", lambda *a, **k: True)
        root.mkdir(parents=True)
        for s in sizes:
            y = np.where(want[f"{s}_y"] == 0, 10, want[f"{s}_y"])[:, None]  # SVHN stores 0 as 10
            mat = {"X": want[s].transpose(2, 3, 1, 0), "y": y.astype(np.uint8)}
            scipy.io.savemat(root / f"{s}_32x32.mat", mat)
    return want


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "svhn"])
def test_torchvision_sets_from_local_files(tmp_path, monkeypatch, name):
    pytest.importorskip("torchvision")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network (simulated)")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    want = _fake_torchvision_files(name, tmp_path / "data", monkeypatch)
    ds = bd.load(name, root=str(tmp_path / "data"))
    assert ds.name == name and ds.num_classes == 10
    for s in ("train", "test"):
        x, y = getattr(ds, f"{s}_x"), getattr(ds, f"{s}_y")
        assert x.dtype == torch.uint8 and x.is_contiguous() and y.dtype == torch.int64
        assert torch.equal(x, torch.from_numpy(want[s]))
        assert torch.equal(y, torch.from_numpy(want[f"{s}_y"]).long())
    if name == "cifar10":
        assert ds.classes == tuple(f"class{k}" for k in range(10))
    if name in ("mnist", "svhn"):
        assert ds.classes == tuple(str(k) for k in range(10))
