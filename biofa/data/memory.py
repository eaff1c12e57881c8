"""Data sets held in memory as tensors, with deterministic minibatches and on-device augmentation.

Three kinds of source, all returned as a :class:`DataSet`:

- ``"digits"``: scikit-learn's embedded 8x8 digits (no download), float32 in [0, 1].
- ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"svhn"``: torchvision data sets under a root
  folder (default ``$BIOFA_DATA`` or ``~/.cache/biofa/data``), as uint8 tensors.
- a path to an ImageFolder directory or ``.zip`` (``train/<class>/*``, ``test/<class>/*``), decoded
  once with PIL and cached as tensors under ``$BIOFA_CACHE`` (default ``~/.cache/biofa``).

Batches are normalised per channel, :math:`\\hat x = (x/255 - \\mu_c)/\\sigma_c` (no ``/255`` for
float sets), with :math:`\\mu_c, \\sigma_c` the train-split statistics. The order of epoch ``e`` is
a permutation drawn from a generator seeded by ``(seed, e)`` only, together with the epoch's
augmentation draws, so resuming mid-epoch (``start_batch``) reproduces the same batches exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from biofa.data import imagefolder

log = logging.getLogger(__name__)

NAMES = ("digits", "mnist", "fashion_mnist", "cifar10", "svhn")
_DIGITS_TEST = 360  # of 1797 digits; 1437 remain for training


def _index_hash(i: int) -> bytes:  # fixes the digits split independently of any RNG
    return hashlib.blake2b(int(i).to_bytes(4, "little"), digest_size=8).digest()


class DataNotFoundError(FileNotFoundError, ValueError):
    """A named data set is neither on disk nor downloadable; the message says where to put it."""


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no truth value; compare by identity
class DataSet:
    """A train/test data set held in memory.

    Parameters
    ----------
    name
        Short name (``"digits"``, ``"mnist"``, or the stem of an ImageFolder path).
    train_x, test_x
        Images ``(N, C, H, W)``: uint8 in 0..255, or float32 already in [0, 1].
    train_y, test_y
        int64 class indices ``(N,)``.
    classes
        Class names; index ``k`` is ``classes[k]``.
    mean, std
        Per-channel mean and (population) standard deviation of ``train_x`` on the [0, 1] scale.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    _affine: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for x, y in ((self.train_x, self.train_y), (self.test_x, self.test_y)):
            if x.dim() != 4 or y.dim() != 1 or len(x) != len(y):
                raise ValueError(f"DataSet {self.name!r}: need x (N, C, H, W) and y (N,)")
        if not len(self.mean) == len(self.std) == self.train_x.shape[1]:
            raise ValueError(f"DataSet {self.name!r}: mean/std need one entry per channel")

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one example."""
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))

    def to(self, device: torch.device | str) -> DataSet:
        """A copy with every tensor on ``device`` (dtypes kept)."""
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y")}
        return dataclasses.replace(self, **moved)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw batch -> float32 ``(x/255 - mean)/std`` (no ``/255`` if float), on x's device."""
        key = (x.device, x.dtype == torch.uint8)
        if key not in self._affine:
            scale = 255.0 if key[1] else 1.0
            std = torch.tensor(self.std, dtype=torch.float64).clamp_min(1e-12)  # constant channel
            mean = torch.tensor(self.mean, dtype=torch.float64)
            a, b = 1.0 / (scale * std), -mean / std
            self._affine[key] = tuple(t.float().view(1, -1, 1, 1).to(x.device) for t in (a, b))
        a, b = self._affine[key]
        return torch.addcmul(b, x.to(torch.float32), a)


# ----------------------------------------------------------------------------------------- loading
def load(data: str, *, root: str = "", stream: bool = False) -> DataSet:
    """Load a data set into memory (CPU).

    Parameters
    ----------
    data
        ``"digits"``, ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"svhn"``, or a path to an
        ImageFolder directory or ``.zip`` holding ``train/<class>/*`` and ``test/<class>/*`` (at its
        root or inside one top-level folder). A name wins over a folder of the same name: write
        ``./mnist`` for the folder.
    root
        Folder of the torchvision data sets; default ``$BIOFA_DATA`` or ``~/.cache/biofa/data``.
    stream
        For an ImageFolder path: index it and read batches from disk through DataLoader workers
        instead of decoding it into memory (:mod:`biofa.data.streaming`; for sets too large for
        RAM).

    Raises
    ------
    ValueError
        Unknown name that is not an existing path, or a path without the ImageFolder layout.
    DataNotFoundError
        A torchvision set is absent and cannot be downloaded (subclass of both
        ``FileNotFoundError`` and ``ValueError``).
    """
    if stream:
        if data in NAMES or not Path(data).expanduser().exists():
            raise ValueError(
                f"stream=True reads an ImageFolder directory or .zip, not "
                f"data={data!r}; in-memory sets need no streaming"
            )
        from biofa.data.streaming import open_stream

        return open_stream(data)  # type: ignore[return-value]
    if data == "digits":
        return _load_digits()
    if data in NAMES:
        return _load_torchvision(data, root)
    path = Path(data).expanduser()
    if path.exists():
        blob = imagefolder.read(path)
        parts = [blob[k] for k in ("train_x", "train_y", "test_x", "test_y")]
        return _make(path.resolve().stem, *parts, blob["classes"])
    raise ValueError(
        f"data={data!r} is neither a known data set ({', '.join(NAMES)}) nor an existing path "
        "to an ImageFolder directory or .zip (train/<class>/*, test/<class>/*)"
    )


def _make(name, train_x, train_y, test_x, test_y, classes) -> DataSet:
    train_y, test_y = (torch.as_tensor(y, dtype=torch.int64) for y in (train_y, test_y))
    return DataSet(name, train_x, train_y, test_x, test_y, tuple(classes), *_channel_stats(train_x))


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std on the [0, 1] scale, in float64.

    uint8: exact, from a 256-bin histogram per channel; float: summed in chunks.
    """
    if x.dtype == torch.uint8:
        hist = torch.stack(
            [torch.bincount(x[:, c].flatten(), minlength=256) for c in range(x.shape[1])]
        )
        v = torch.arange(256, dtype=torch.float64) / 255
        n = hist.sum(1).double()
        s1, s2 = (hist.double() @ v) / n, (hist.double() @ v.square()) / n
    else:
        chunk = max(1, 2**22 // max(1, x[0].numel()))
        s1 = s2 = torch.zeros(x.shape[1], dtype=torch.float64)
        for i in range(0, len(x), chunk):
            xb = x[i : i + chunk].to("cpu", torch.float64)
            s1, s2 = s1 + xb.sum((0, 2, 3)), s2 + xb.square().sum((0, 2, 3))
        n = x.shape[0] * x.shape[2] * x.shape[3]
        s1, s2 = s1 / n, s2 / n
    std = (s2 - s1.square()).clamp_min(0).sqrt()
    return tuple(s1.tolist()), tuple(std.tolist())


def _load_digits() -> DataSet:
    """scikit-learn's 1797 digits, split 1437/360 stratified, the same split for every run.

    Test examples per class follow the class frequencies (largest-remainder rounding of 360, ties
    to the lower class); within a class, the examples whose BLAKE2b hash of their index (4 bytes,
    little-endian) sorts first go to the test split. Both splits keep the original order.
    """
    # the CSV that load_digits() reads, without importing sklearn (saves ~1.5 s per run)
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec else None
    if csv is not None and csv.is_file():
        table = np.loadtxt(csv, delimiter=",")
        images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    else:  # pragma: no cover - layout of a future scikit-learn
        from sklearn.datasets import load_digits

        images, target = load_digits(return_X_y=True)
        images = images.reshape(-1, 8, 8)
    x = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(target.astype(np.int64))
    counts = torch.bincount(y).tolist()
    quota = [_DIGITS_TEST * c / len(y) for c in counts]
    take = [math.floor(q) for q in quota]
    by_remainder = sorted(range(len(counts)), key=lambda k: (-(quota[k] - take[k]), k))
    for k in by_remainder[: _DIGITS_TEST - sum(take)]:
        take[k] += 1
    is_test = torch.zeros(len(y), dtype=torch.bool)
    for k, n_test in enumerate(take):
        members = sorted(torch.nonzero(y == k).flatten().tolist(), key=_index_hash)
        is_test[members[:n_test]] = True
    classes = [str(k) for k in range(10)]
    return _make("digits", x[~is_test], y[~is_test], x[is_test], y[is_test], classes)


# torchvision class name, folder under root, what must be there
_TORCHVISION = {
    "mnist": ("MNIST", "MNIST/raw", "train-images-idx3-ubyte.gz and the other three IDX files"),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw", "the four Fashion-MNIST IDX files"),
    "cifar10": ("CIFAR10", "", "cifar-10-python.tar.gz (or its folder cifar-10-batches-py/)"),
    "svhn": ("SVHN", "", "train_32x32.mat and test_32x32.mat"),
}


def _load_torchvision(name: str, root: str) -> DataSet:
    try:
        from torchvision import datasets
    except ImportError as err:  # pragma: no cover - torchvision is in the dev extra
        raise ImportError(f"data={name!r} needs torchvision: pip install 'biofa[vision]'") from err
    cls_name, sub, files = _TORCHVISION[name]
    base = Path(root or os.environ.get("BIOFA_DATA", "") or "~/.cache/biofa/data").expanduser()
    cls = getattr(datasets, cls_name)
    splits = []
    for train in (True, False):
        kw = {"split": "train" if train else "test"} if name == "svhn" else {"train": train}
        try:
            try:  # local files first: download=True re-hashes or re-fetches for some sets
                splits.append(cls(str(base), download=False, **kw))
            except RuntimeError:  # torchvision's "Dataset not found"
                splits.append(cls(str(base), download=True, **kw))
        except Exception as err:  # absent and offline, or a partial/corrupt download
            why = " ".join(f"{type(err).__name__}: {err}".split())
            raise DataNotFoundError(
                f"data={name!r} is not in {base / sub} and could not be downloaded ({why}); put "
                f"{files} in {base / sub} (or set BIOFA_DATA / data_root to the folder holding "
                "them), or pass the path of an ImageFolder directory or .zip "
                "(train/<class>/*, test/<class>/*) as data"
            ) from err
    out = []
    for ds in splits:
        if name == "svhn":  # numpy (N, 3, 32, 32), labels already 0..9
            x, y = torch.from_numpy(ds.data), torch.from_numpy(ds.labels)
        elif name == "cifar10":  # numpy (N, 32, 32, 3)
            x, y = torch.from_numpy(ds.data).permute(0, 3, 1, 2), torch.tensor(ds.targets)
        else:  # uint8 tensor (N, 28, 28)
            x, y = ds.data.unsqueeze(1), ds.targets
        out += [x.contiguous(), y]
    classes = getattr(splits[0], "classes", None) if name in ("fashion_mnist", "cifar10") else None
    return _make(name, *out, classes or [str(k) for k in range(10)])


# ------------------------------------------------------------------------------------- batching
def steps_per_epoch(data: DataSet, batch_size: int, drop_last: bool = False) -> int:
    """Number of training batches per epoch."""
    n = len(data.train_y)
    return n // batch_size if drop_last else -(-n // batch_size)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """CPU generator seeded from ``(seed, epoch)`` only (BLAKE2b, so streams are unrelated)."""
    digest = hashlib.blake2b(f"biofa.data:{int(seed)}:{int(epoch)}".encode(), digest_size=8)
    return torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)


def train_batches(
    data: DataSet,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    augment: bool = False,
    start_batch: int = 0,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled, normalised training batches of one epoch, on the data's device.

    The epoch's permutation and augmentation draws (crop offsets, flips; one per position) are
    drawn up front from :func:`_epoch_generator`, so batch ``b`` is the same whether the
    iteration starts at 0 or at ``start_batch <= b``. Yields ``(x float32, y int64)``.
    """
    if batch_size <= 0 or start_batch < 0:
        raise ValueError(
            f"need batch_size > 0 and start_batch >= 0, got {batch_size}, {start_batch}"
        )
    if getattr(data, "streaming", False):  # read from disk by workers (biofa.data.streaming)
        yield from data.train_batches(
            batch_size,
            seed=seed,
            epoch=epoch,
            augment=augment,
            start_batch=start_batch,
            drop_last=drop_last,
        )
        return
    n, device = len(data.train_y), data.train_x.device
    g = _epoch_generator(seed, epoch)
    perm = torch.randperm(n, generator=g).to(device)
    draws = [d.to(device) for d in _draw(n, 4, g)] if augment else None
    for b in range(start_batch, steps_per_epoch(data, batch_size, drop_last)):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        idx = perm[sl]
        x = data.train_x[idx]
        if draws is not None:
            x = _crop_flip(x, *(d[sl] for d in draws), padding=4)
        yield data.normalize(x), data.train_y[idx]


def test_batches(data: DataSet, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Test batches in order, normalised, without augmentation."""
    if batch_size <= 0:
        raise ValueError(f"need batch_size > 0, got {batch_size}")
    if getattr(data, "streaming", False):
        yield from data.test_batches(batch_size)
        return
    for i in range(0, len(data.test_y), batch_size):
        yield data.normalize(data.test_x[i : i + batch_size]), data.test_y[i : i + batch_size]


# ---------------------------------------------------------------------------------- augmentation
def _draw(n: int, padding: int, generator: torch.Generator):
    """Per-example crop offsets ``dy, dx`` in ``0..2*padding`` and flip flags, on the generator."""
    kw = {"generator": generator, "device": generator.device}
    dy = torch.randint(0, 2 * padding + 1, (n,), **kw)
    dx = torch.randint(0, 2 * padding + 1, (n,), **kw)
    flip = torch.randint(0, 2, (n,), **kw).bool()
    return dy, dx, flip


def _crop_flip(x, dy, dx, flip, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding``, crop ``H x W`` at ``(dy, dx)``, mirror where ``flip``; one gather.

    ``out[n, c, i, j] = pad(x)[n, c, dy_n + i, dx_n + (W - 1 - j if flip_n else j)]``.
    """
    n, c, h, w = x.shape
    dy, dx, flip = dy.to(x.device), dx.to(x.device), flip.to(x.device)
    xp = F.pad(x, (padding,) * 4)
    ih, iw = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    rows = dy[:, None] + ih
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - iw, iw)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return xp[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def augment_crop_flip(
    x: torch.Tensor, generator: torch.Generator, padding: int = 4
) -> torch.Tensor:
    """Standard CIFAR augmentation for a whole batch ``(N, C, H, W)`` on its device.

    Zero-pads by ``padding``, crops back to ``H x W`` at a per-example random offset and flips
    each example horizontally with probability 1/2. Works on raw uint8 or float images (zero
    padding = black). Draws come from ``generator`` (any device) via :func:`_draw`.
    """
    return _crop_flip(x, *_draw(len(x), padding, generator), padding=padding)
