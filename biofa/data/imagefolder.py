"""ImageFolder layouts (``train/<class>/*``, ``test/<class>/*``) in a directory or a ``.zip``.

Every image is decoded once with PIL into uint8 tensors, which are cached (atomically written)
under ``$BIOFA_CACHE`` (default ``~/.cache/biofa``), keyed by the path and the size and mtime of
the zip or of every file; class indices follow the sorted class folder names, as torchvision's
``ImageFolder``. Hidden files and folders are skipped. Greyscale images (PIL modes ``L``, ``1``,
``LA``, ``I``, ``F``) become one channel and the others (``RGB``, ``RGBA``, ``P``, ...) three; a
set that mixes both warns, naming the counts, and converts every image to RGB.

Layout problems are one-line ``ValueError``\\ s naming the path and what is missing: no such
path, a file that is not a zip, no ``train/`` or no ``test/`` folder, a class folder without
images, test classes without a training folder, or a single class.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from biofa.data.memory import InMemoryDataSet
from biofa.data.normalization import channel_stats

__all__ = ["IMG_EXTENSIONS", "layout", "list_members", "load_image_folder", "read"]

log = logging.getLogger(__name__)

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_GREY_BANDS = ("L", "1", "I", "F")  # first band of a greyscale mode (with or without alpha)
_CACHE_VERSION = 2  # 2: greyscale/colour counts in the blob


def _walk_order(name: str) -> tuple[str, str]:  # (folder, file): the order of sorted(os.walk)
    return name.rpartition("/")[::2]


def list_members(path: Path) -> tuple[list[str], list[str]]:
    """``(files, folders)`` of a directory or zip, as ``/``-separated relative names.

    Raises a one-line ``ValueError`` for a missing path, a file that is not a zip, or an
    unreadable zip.
    """
    if path.is_dir():
        files, folders = [], []
        for d, ds, fs in os.walk(path, followlinks=True):
            rel = os.path.relpath(d, path).replace(os.sep, "/")
            prefix = "" if rel == "." else rel + "/"
            files += [prefix + f for f in fs]
            folders += [prefix + x for x in ds]
        return files, folders
    if not path.exists():
        raise ValueError(f"data={str(path)!r}: no such file or directory")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"data={str(path)!r} is neither a directory nor a .zip archive")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"data={str(path)!r}: cannot read the zip archive ({err})") from err
    files = [i.filename for i in infos if not i.is_dir()]
    folders = [i.filename.rstrip("/") for i in infos if i.is_dir()]
    return files, folders


def _is_grey(im) -> bool:
    return im.getbands()[0] in _GREY_BANDS and len(im.getbands()) <= 2


def layout(where: str, names: list[str], folders: list[str] = ()) -> dict:
    """The ImageFolder layout among ``names`` (files) and ``folders``; nothing is decoded.

    Returns ``{"classes": [...], "train": (files, labels), "test": (files, labels)}`` with files
    in torchvision's order (also used to stream a set too large for memory,
    :mod:`biofa.data.streaming`). ``where`` names the path in error messages.
    """
    entries = [(n, True) for n in names] + [(f, False) for f in folders]
    split_at = {}  # prefix -> its depth; the shallowest prefix holding train/ or test/ wins
    for n, is_file in entries:
        parts = n.split("/")
        if parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts[:-1]):
            continue
        # a file must sit in <split>/<class>/; a folder may be the (empty) split folder itself
        for k, p in enumerate(parts[: len(parts) - 2 if is_file else len(parts)]):
            if p in ("train", "test"):
                split_at.setdefault("".join(q + "/" for q in parts[:k]), k)
                break
    prefixes = sorted(split_at, key=lambda p: (split_at[p], p))
    if not prefixes:
        raise ValueError(
            f"data={where!r} has no train/ or test/ folder; it must hold train/<class>/<image> "
            "and test/<class>/<image> at its top level or inside one top-level folder"
        )
    if len(prefixes) > 1 and split_at[prefixes[0]] == split_at[prefixes[1]]:
        raise ValueError(
            f"data={where!r} must hold train/<class>/<image> and test/<class>/<image> at its top "
            f"level or inside one top-level folder (found {len(prefixes)} candidates: "
            f"{', '.join(p or './' for p in prefixes[:3])})"
        )
    prefix = prefixes[0]
    members: dict = {"train": {}, "test": {}}
    class_folders: dict = {"train": set(), "test": set()}
    seen = set()
    for n, is_file in entries:
        parts = n[len(prefix) :].split("/") if n.startswith(prefix) else []
        if not parts or parts[0] not in members:
            continue
        seen.add(parts[0])
        if any(p.startswith(".") for p in parts[1:]):  # .ipynb_checkpoints, ._x.png
            continue
        if len(parts) >= 2 and (not is_file or len(parts) >= 3):
            class_folders[parts[0]].add(parts[1])
        if is_file and len(parts) >= 3 and n.lower().endswith(IMG_EXTENSIONS):
            members[parts[0]].setdefault(parts[1], []).append(n)
    for split, other in (("train", "test"), ("test", "train")):
        if split not in seen:
            raise ValueError(
                f"data={where!r} has no {prefix}{split}/ folder next to "
                f"{prefix}{other}/ (need {split}/<class>/<image>)"
            )
    for split in ("train", "test"):
        if not class_folders[split]:
            raise ValueError(
                f"data={where!r}: {prefix}{split}/ holds no class folders "
                f"(need {split}/<class>/<image>)"
            )
        if empty := sorted(class_folders[split] - set(members[split])):
            shown = ", ".join(f"{prefix}{split}/{c}/" for c in empty[:3])
            more = f" and {len(empty) - 3} more" if len(empty) > 3 else ""
            raise ValueError(
                f"data={where!r}: class folder {shown}{more} holds no images "
                f"({', '.join(IMG_EXTENSIONS)})"
            )
    classes = sorted(members["train"])
    if extra := sorted(set(members["test"]) - set(classes)):
        raise ValueError(f"data={where!r}: test classes {extra} have no train folder")
    if len(classes) < 2:
        raise ValueError(
            f"data={where!r} has one class ({prefix}train/{classes[0]}/); a "
            "classifier needs at least two"
        )
    found: dict = {"classes": classes}
    for split, by_class in members.items():
        files, labels = [], []
        for k, c in enumerate(classes):
            ordered = sorted(by_class.get(c, []), key=_walk_order)  # as torchvision's os.walk
            files += ordered
            labels += [k] * len(ordered)
        found[split] = (files, labels)
    return found


def open_image(data: bytes, name: str):
    """A PIL image from ``data``; a one-line ``ValueError`` naming ``name`` when it is not one."""
    from PIL import Image

    try:
        return Image.open(io.BytesIO(data))
    except Exception as err:
        raise ValueError(f"cannot decode image {name!r}: {err}") from err


def decode(data: bytes, name: str, mode: str | None) -> np.ndarray:
    """Image ``name`` as uint8 ``(H, W, C)``: in ``mode`` ("L" or "RGB"), or its own (None)."""
    with open_image(data, name) as im:
        mode = mode or ("L" if _is_grey(im) else "RGB")
        a = np.array(im if im.mode == mode else im.convert(mode))
    return a[:, :, None] if a.ndim == 2 else a


def _decode_images(files: list[str], read: Callable[[str], bytes]) -> tuple[np.ndarray, int]:
    """Decode ``files`` into uint8 ``(N, H, W, C)`` and the number of greyscale images.

    One channel while every image so far is greyscale; at the first colour image the array
    becomes RGB (grey replicated, as PIL's L -> RGB). Every image must have one size. Serial on
    purpose: for small images the Python overhead dominates and threads only add contention
    (measured ~2x slower with 2 threads on 28x28 PNGs).
    """
    out, grey = None, 0
    for i, n in enumerate(files):
        try:
            raw = read(n)
        except (OSError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"cannot read image {n!r}: {err}") from err
        with open_image(raw, n) as im:
            is_grey = _is_grey(im)
            grey += is_grey
            mode = "L" if is_grey and (out is None or out.shape[3] == 1) else "RGB"
            a = np.asarray(im if im.mode == mode else im.convert(mode))
        a = a[:, :, None] if a.ndim == 2 else a
        if out is None:
            out = np.empty((len(files), *a.shape), np.uint8)
        elif a.shape[2] == 3 and out.shape[3] == 1:
            out = np.repeat(out, 3, axis=3)
        if a.shape[:2] != out.shape[1:3]:
            raise ValueError(f"image {n!r} is {a.shape[:2]}, others are {out.shape[1:3]} (H, W)")
        out[i] = a
    return (out if out is not None else np.empty((0, 1, 1, 1), np.uint8)), grey


def _decode_layout(where: str, names: list[str], folders: list[str], read) -> dict:
    """Find ``[prefix/]train|test/<class>/...`` among ``names``, decode it into tensors."""
    found = layout(where, names, folders)
    blob: dict = {"classes": found["classes"], "grey": 0, "colour": 0}
    arrays = {}
    for split in ("train", "test"):
        files, labels = found[split]
        arrays[split], grey = _decode_images(files, read)
        blob["grey"] += grey
        blob["colour"] += len(files) - grey
        blob[f"{split}_y"] = torch.tensor(labels, dtype=torch.int64)
    if arrays["train"].shape[3] != arrays["test"].shape[3]:  # grey in one split, colour in other
        arrays = {s: a if a.shape[3] == 3 else np.repeat(a, 3, axis=3) for s, a in arrays.items()}
    for split, a in arrays.items():
        blob[f"{split}_x"] = torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()
    return blob


def warn_mixed(where: str, grey: int, colour: int, sample: str = "") -> None:
    """Warn that ``where`` mixes greyscale and colour images (all are read as RGB)."""
    if grey and colour:
        warnings.warn(
            f"data={where!r} mixes {grey} greyscale and {colour} colour images{sample}; "
            "reading all of them as RGB (3 channels)",
            stacklevel=3,
        )


def read(path: Path) -> dict:
    """Decode an ImageFolder directory/zip once; later reads load the tensors from the cache.

    Returns ``{"train_x", "train_y", "test_x", "test_y", "classes", "grey", "colour"}`` (uint8
    ``N x C x H x W``; the last two count greyscale and colour images).
    """
    path = path.expanduser().resolve()
    names, folders = list_members(path) if path.is_dir() else (None, None)
    if path.is_dir():
        fingerprint = sorted((n, *_stat(path / n)) for n in names)
    else:
        list_members(path)  # a readable zip, or a one-line error
        fingerprint = [(str(path), *_stat(path))]
    key = hashlib.sha256(repr((_CACHE_VERSION, str(path), fingerprint)).encode()).hexdigest()
    cache_dir = Path(os.environ.get("BIOFA_CACHE", "") or "~/.cache/biofa").expanduser()
    cache = cache_dir / f"imagefolder-{path.stem}-{key[:20]}.pt"
    blob = _read_cache(cache)
    if blob is None and names is not None:
        blob = _decode_layout(str(path), names, folders, lambda n: (path / n).read_bytes())
        _write_cache(cache, blob)
    elif blob is None:
        names, folders = list_members(path)
        with zipfile.ZipFile(path) as archive:
            blob = _decode_layout(str(path), names, folders, archive.read)
        _write_cache(cache, blob)
    warn_mixed(str(path), blob["grey"], blob["colour"])
    return blob


def load_image_folder(path: str | Path) -> InMemoryDataSet:
    """An ImageFolder directory or ``.zip`` decoded into memory (module docstring)."""
    path = Path(path).expanduser().resolve()
    blob = read(path)
    parts = [blob[k] for k in ("train_x", "train_y", "test_x", "test_y")]
    return InMemoryDataSet(
        path.stem, *parts, tuple(blob["classes"]), *channel_stats(blob["train_x"])
    )


def _stat(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns


def _read_cache(cache: Path) -> dict | None:
    try:
        return torch.load(cache, map_location="cpu", weights_only=True) if cache.is_file() else None
    except Exception as err:  # unreadable: decode again and overwrite
        log.warning("ignoring unreadable cache %s (%s)", cache, err)
        return None


def _write_cache(cache: Path, blob: dict) -> None:
    """Atomic write: a temporary file in the same folder, then ``os.replace``."""
    tmp = None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=f".{cache.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save(blob, f)
        os.replace(tmp, cache)
    except OSError as err:  # read-only home etc.: keep going without a cache
        log.warning("could not write the data cache %s (%s)", cache, err)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
