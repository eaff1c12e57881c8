"""Image sets too large for memory: stream them from disk through DataLoader workers.

``Train(data="path/to/imagefolder", stream=True)`` (an ImageFolder directory or ``.zip`` with
``train/<class>/*`` and ``test/<class>/*``) makes :func:`biofa.data.load` return a
:class:`StreamingDataSet` instead of decoding every image into memory: only the file list and
the labels are held; each batch's images are read and decoded by ``torch.utils.data.DataLoader``
worker processes into pinned memory, copied to the device without blocking, and augmented (crop
and flip) and normalised there -- the same code as for resident data. The rest of the training
loop sees the same :func:`~biofa.data.train_batches` / :func:`~biofa.data.test_batches` API.

Same batches as the in-memory path: the epoch's permutation and augmentation draws come from the
same ``(seed, epoch)`` generator (:func:`biofa.data._epoch_generator`) and are indexed the same
way, so a streamed run sees exactly the images, crops and flips a resident run of the same seed
sees, and resuming at ``start_batch`` works the same. Images stay uint8 until they are on the
device.

Normalisation statistics (per-channel mean and std) come from a fixed sample of up to
``stats_images`` training images (evenly spaced over the file list), not all of them.

Without ``stream``, a set that is in memory but does not fit the GPU (over 40 % of its free
memory) stays in host memory, pinned, and batches are copied without blocking
(:func:`biofa.train._place_data`).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from biofa.data import imagefolder

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

    def __init__(self, reader: _Reader, files: list[str], mode: str):
        self.reader, self.files, self.mode = reader, files, mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        name = self.files[i]
        with imagefolder._open(self.reader(name), name) as im:
            a = np.array(im if im.mode == self.mode else im.convert(self.mode))  # writable copy
        a = a[:, :, None] if a.ndim == 2 else a
        return torch.from_numpy(a).permute(2, 0, 1)


def _stack(batch: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(batch)


@dataclass(frozen=True, eq=False)
class StreamingDataSet:
    """An ImageFolder set read from disk batch by batch (module docstring).

    Has the attributes of :class:`biofa.data.DataSet` that do not need the images
    (``name``, ``train_y``, ``test_y``, ``classes``, ``mean``, ``std``, ``input_shape``,
    ``num_classes``, ``normalize``); ``streaming`` is True.
    """

    name: str
    root: Path
    train_files: list[str]
    test_files: list[str]
    train_y: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mode: str
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    workers: int = 4
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _affine: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    streaming = True

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device) -> StreamingDataSet:
        """Where batches are delivered (the images stay on disk)."""
        import dataclasses

        return dataclasses.replace(self, device=torch.device(device))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        from biofa.data.memory import DataSet

        return DataSet.normalize(self, x)  # the same affine map, cached per device

    def _loader(self, files: list[str], batches: list[list[int]]) -> Iterator[torch.Tensor]:
        images = _Images(_Reader(self.root), files, self.mode)
        return iter(
            torch.utils.data.DataLoader(
                images,
                batch_sampler=batches,
                num_workers=self.workers,
                collate_fn=_stack,
                pin_memory=self.device.type == "cuda",
                prefetch_factor=4 if self.workers else None,
                persistent_workers=False,
            )
        )

    def train_batches(
        self,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        augment: bool,
        start_batch: int,
        drop_last: bool,
    ):
        """Batches of one epoch: the permutation and draws of :func:`biofa.data.train_batches`."""
        from biofa.data import memory as datasets

        n = len(self.train_y)
        g = datasets._epoch_generator(seed, epoch)
        perm = torch.randperm(n, generator=g)
        draws = [d.to(self.device) for d in datasets._draw(n, 4, g)] if augment else None
        steps = datasets.steps_per_epoch(self, batch_size, drop_last)
        slices = [slice(b * batch_size, (b + 1) * batch_size) for b in range(start_batch, steps)]
        labels = self.train_y.to(self.device)
        for sl, x in zip(
            slices, self._loader(self.train_files, [perm[sl].tolist() for sl in slices])
        ):
            x = x.to(self.device, non_blocking=True)
            if draws is not None:
                x = datasets._crop_flip(x, *(d[sl] for d in draws), padding=4)
            yield self.normalize(x), labels[perm[sl].to(self.device)]

    def test_batches(self, batch_size: int):
        n = len(self.test_y)
        slices = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
        labels = self.test_y.to(self.device)
        for idx, x in zip(slices, self._loader(self.test_files, slices)):
            x = x.to(self.device, non_blocking=True)
            yield self.normalize(x), labels[idx[0] : idx[-1] + 1]


def open_stream(
    path: str | Path, *, workers: int | None = None, stats_images: int = 4096
) -> StreamingDataSet:
    """Index an ImageFolder directory or ``.zip`` for streaming (module docstring)."""
    root = Path(path).expanduser().resolve()
    if root.is_dir():
        names = [
            os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
            for d, _, fs in os.walk(root, followlinks=True)
            for f in fs
        ]
    elif zipfile.is_zipfile(root):
        with zipfile.ZipFile(root) as z:
            names = [i.filename for i in z.infolist() if not i.is_dir()]
    else:
        raise ValueError(
            f"data={str(path)!r}: stream=True needs an ImageFolder directory or "
            ".zip (train/<class>/*, test/<class>/*)"
        )
    reader = _Reader(root)
    found = imagefolder.layout(str(path), names, reader)
    (train_files, train_labels), (test_files, test_labels) = found["train"], found["test"]
    images = _Images(reader, train_files, found["mode"])
    step = max(1, len(train_files) // stats_images)
    sample = torch.stack([images[i] for i in range(0, len(train_files), step)][:stats_images])
    from biofa.data.memory import _channel_stats

    mean, std = _channel_stats(sample)
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
        mode=found["mode"],
        input_shape=tuple(int(s) for s in sample.shape[1:]),
        mean=mean,
        std=std,
        workers=workers,
    )
