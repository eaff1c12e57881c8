"""Image sets too large for memory: stream them from disk through DataLoader workers.

``Train(data="path/to/imagefolder", stream=True)`` (an ImageFolder directory or ``.zip`` with
``train/<class>/*`` and ``test/<class>/*``) makes :func:`biofa.data.load` return a
:class:`StreamingDataSet` instead of decoding every image into memory: only the file list and
the labels are held; each batch's images are read and decoded by ``torch.utils.data.DataLoader``
worker processes into pinned memory, copied to the device without blocking, and augmented (crop
and flip) and normalised there -- the code of every :class:`~biofa.data.DataSource`.

Same batches as the in-memory path: the epoch's permutation and augmentation draws come from the
same ``(seed, epoch)`` generator and are indexed the same way
(:meth:`~biofa.data.DataSource.train_batches`), so a streamed run sees exactly the images, crops
and flips a resident run of the same seed sees, and resuming at ``start_batch`` works the same.
Images stay uint8 until they are on the device.

Normalisation statistics (per-channel mean and std) come from a fixed sample of up to
``stats_images`` training images (evenly spaced over the file list), not all of them. Whether the
set is greyscale or colour is decided on that sample and up to 256 test images: if they mix
both, a warning names the counts and every image is read as RGB.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from biofa.data import imagefolder
from biofa.data.base import Batch, DataSource
from biofa.data.normalization import channel_stats

__all__ = ["StreamingDataSet", "open_stream"]


class _Reader:
    """Reads raw bytes of member ``name`` from a directory or a zip (one handle per process)."""

    def __init__(self, root: Path):
        self.root, self._zip, self._pid = root, None, None

    def __call__(self, name: str) -> bytes:
        if self.root.is_dir():
            return (self.root / name).read_bytes()
        if self._zip is None or self._pid != os.getpid():  # fresh handle in each worker
            self._zip, self._pid = zipfile.ZipFile(self.root), os.getpid()
        return self._zip.read(name)

    def __getstate__(self):
        return {"root": self.root, "_zip": None, "_pid": None}


class _Images(torch.utils.data.Dataset):
    """Decoded uint8 ``(C, H, W)`` images of one split, by index."""

    def __init__(self, reader: _Reader, files: list[str], mode: str | None):
        self.reader, self.files, self.mode = reader, files, mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        name = self.files[i]
        return torch.from_numpy(imagefolder.decode(self.reader(name), name, self.mode)).permute(
            2, 0, 1
        )


def _stack(batch: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(batch)


@dataclass(frozen=True, eq=False, repr=False)
class StreamingDataSet(DataSource):
    """An ImageFolder set read from disk batch by batch (module docstring).

    Parameters
    ----------
    name, classes, mean, std
        As every :class:`~biofa.data.DataSource`.
    root
        The directory or zip.
    train_files, test_files
        Member names of each split's images, in storage order.
    train_y, test_y
        Their int64 labels (CPU).
    mode
        ``"L"`` or ``"RGB"``: what every image is converted to.
    image_shape
        ``(C, H, W)`` of every image.
    workers
        DataLoader worker processes (0: read in this process).
    deliver_to
        Where batches are delivered (:meth:`to`, :meth:`place`).
    """

    name: str
    root: Path
    train_files: list[str]
    test_files: list[str]
    train_y: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mode: str
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    workers: int = 4
    deliver_to: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one example."""
        return tuple(self.image_shape)

    @property
    def device(self) -> torch.device:
        """Where batches are delivered."""
        return self.deliver_to

    @property
    def train_labels(self) -> torch.Tensor:
        """int64 CPU tensor of the training labels."""
        return self.train_y

    @property
    def test_labels(self) -> torch.Tensor:
        """int64 CPU tensor of the test labels."""
        return self.test_y

    def to(self, device: torch.device | str) -> StreamingDataSet:
        """Where batches are delivered (the images stay on disk)."""
        return dataclasses.replace(self, deliver_to=torch.device(device))

    def _split(self, split: str) -> tuple[list[str], torch.Tensor]:
        return (
            (self.train_files, self.train_y) if split == "train" else (self.test_files, self.test_y)
        )

    def _loader(self, files: list[str], batches: list[list[int]]) -> Iterator[torch.Tensor]:
        images = _Images(_Reader(self.root), files, self.mode)
        return iter(
            torch.utils.data.DataLoader(
                images,
                batch_sampler=batches,
                num_workers=self.workers,
                collate_fn=_stack,
                pin_memory=self.deliver_to.type == "cuda",
                prefetch_factor=4 if self.workers else None,
                persistent_workers=False,
            )
        )

    def _read(self, split: str, order: torch.Tensor | None, slices: list[slice]) -> Iterator[Batch]:
        files, labels = self._split(split)
        order = torch.arange(len(files)) if order is None else order
        batches = [order[sl] for sl in slices]
        labels = labels.to(self.deliver_to)
        for idx, x in zip(batches, self._loader(files, [b.tolist() for b in batches])):
            yield x.to(self.deliver_to, non_blocking=True), labels[idx.to(self.deliver_to)]

    def _take(self, train, test) -> StreamingDataSet:
        parts = {}
        for key, (split, index) in (("train", train), ("test", test)):
            files, labels = self._split(split)
            parts[f"{key}_files"] = [files[i] for i in index.tolist()]
            parts[f"{key}_y"] = labels[index]
        return dataclasses.replace(self, **parts)


def open_stream(
    path: str | Path, *, workers: int | None = None, stats_images: int = 4096
) -> StreamingDataSet:
    """Index an ImageFolder directory or ``.zip`` for streaming (module docstring)."""
    root = Path(path).expanduser().resolve()
    names, folders = imagefolder.list_members(root)
    found = imagefolder.layout(str(path), names, folders)
    (train_files, train_labels), (test_files, test_labels) = found["train"], found["test"]
    reader = _Reader(root)
    native = _Images(reader, train_files, None)  # each image in its own mode
    step = max(1, len(train_files) // stats_images)
    sample = [native[i] for i in range(0, len(train_files), step)][:stats_images]
    test_step = max(1, len(test_files) // 256)
    checked = (
        sample
        + [_Images(reader, test_files, None)[i] for i in range(0, len(test_files), test_step)][:256]
    )
    if len({tuple(x.shape[1:]) for x in checked}) > 1:
        sizes = sorted({tuple(x.shape[1:]) for x in checked})
        raise ValueError(
            f"data={str(path)!r}: images of different sizes {sizes[:3]} (H, W); "
            "every image must have one size"
        )
    grey = sum(len(x) == 1 for x in checked)
    imagefolder.warn_mixed(
        str(path), grey, len(checked) - grey, sample=f" (in a sample of {len(checked)})"
    )
    mode = "L" if grey == len(checked) else "RGB"
    if mode == "RGB":
        sample = [x.expand(3, -1, -1) for x in sample]
    mean, std = channel_stats(torch.stack(sample))
    if workers is None:
        workers = min(8, max(1, (os.cpu_count() or 1) - 1))
    return StreamingDataSet(
        name=root.stem,
        root=root,
        train_files=train_files,
        test_files=test_files,
        train_y=torch.tensor(train_labels, dtype=torch.int64),
        test_y=torch.tensor(test_labels, dtype=torch.int64),
        classes=tuple(found["classes"]),
        mode=mode,
        image_shape=tuple(int(s) for s in sample[0].shape),
        mean=mean,
        std=std,
        workers=workers,
    )
