"""Data sets held in memory as tensors: :class:`InMemoryDataSet`.

The images of both splits are tensors ``(N, C, H, W)``, uint8 in 0..255 or float (conventionally
in [0, 1]); a batch is a gather of them on their device, then augmented and normalised there
(:class:`~biofa.data.DataSource`). Build one from tensors with
:meth:`InMemoryDataSet.from_tensors`, which computes the normalisation statistics.

Placement for training (:meth:`InMemoryDataSet.place`): on a GPU the whole set moves to the
device when it takes less than 40 % of the device's free memory, so batches are gathered,
augmented and normalised there with no copy at all; otherwise it stays in pinned host memory
and each batch is gathered on the host into pinned memory and copied to the device without
blocking (augmentation and normalisation still run on the device).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from biofa.data.base import Batch, DataSource
from biofa.data.normalization import channel_stats

__all__ = ["InMemoryDataSet"]

_FIT_FRACTION = 0.4  # of the GPU's free memory a set may take to live there


@dataclass(frozen=True, eq=False, repr=False)  # eq=False: tensors have no truth value
class InMemoryDataSet(DataSource):
    """A train/test data set held in memory (module docstring).

    Parameters
    ----------
    name
        Short name (``"digits"``, ``"mnist"``, or the stem of an ImageFolder path).
    train_x, test_x
        Images ``(N, C, H, W)``: uint8 in 0..255, or float (conventionally in [0, 1]).
    train_y, test_y
        int64 class indices ``(N,)``.
    classes
        Class names; index ``k`` is ``classes[k]``.
    mean, std
        Per-channel mean and (population) standard deviation of ``train_x`` on the [0, 1] scale.
    deliver_to
        Set by :meth:`place` when the images stay in (pinned) host memory: the device batches
        are copied to. ``None``: batches are made where the tensors are.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    deliver_to: torch.device | None = None

    def __post_init__(self) -> None:
        what = f"data {self.name!r}"
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
                raise TypeError(f"{what}: {split}_x and {split}_y must be torch tensors")
            if x.dim() != 4 or y.dim() != 1 or len(x) != len(y):
                raise ValueError(
                    f"{what}: need {split}_x (N, C, H, W) and {split}_y (N,), got "
                    f"{tuple(x.shape)} and {tuple(y.shape)}"
                )
            if not (x.dtype == torch.uint8 or x.is_floating_point()):
                raise TypeError(f"{what}: {split}_x must be uint8 or float, not {x.dtype}")
            if y.dtype != torch.int64:
                raise TypeError(f"{what}: {split}_y must be int64 class indices, not {y.dtype}")
        if self.test_x.shape[1:] != self.train_x.shape[1:]:
            raise ValueError(
                f"{what}: test images are {tuple(self.test_x.shape[1:])}, training images "
                f"{tuple(self.train_x.shape[1:])} (C, H, W)"
            )
        if not len(self.mean) == len(self.std) == self.train_x.shape[1]:
            raise ValueError(f"{what}: mean/std need one entry per channel")

    @classmethod
    def from_tensors(
        cls,
        name: str,
        train_x,
        train_y,
        test_x,
        test_y,
        classes: Sequence[str] | None = None,
    ) -> InMemoryDataSet:
        """A data set from image and label tensors (or arrays), with its normalisation statistics.

        Parameters
        ----------
        name
            Short name, recorded with every run.
        train_x, test_x
            Images ``(N, C, H, W)``, uint8 in 0..255 or float (conventionally in [0, 1]).
        train_y, test_y
            Class indices ``(N,)`` (any integer type; stored as int64).
        classes
            Class names; default ``"0", "1", ...`` up to the largest label.
        """
        xs = [
            torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
            for x in (train_x, test_x)
        ]
        ys = [
            torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
            for y in (train_y, test_y)
        ]
        for y in ys:
            if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
                raise TypeError(
                    f"data {name!r}: labels must be integer class indices, not {y.dtype}"
                )
        ys = [y.to(torch.int64) for y in ys]
        if classes is None:
            top = max((int(y.max()) for y in ys if len(y)), default=-1)
            classes = [str(k) for k in range(top + 1)]
        x = xs[0]
        if x.dim() != 4:  # checked again, with both splits, by __post_init__
            raise ValueError(f"data {name!r}: need train_x (N, C, H, W), got {tuple(x.shape)}")
        return cls(name, xs[0], ys[0], xs[1], ys[1], tuple(classes), *channel_stats(x))

    # ------------------------------------------------------------------------------ storage
    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one example."""
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def device(self) -> torch.device:
        """Where batches are delivered."""
        return self.deliver_to if self.deliver_to is not None else self.train_x.device

    @property
    def train_labels(self) -> torch.Tensor:
        """int64 CPU tensor of the training labels."""
        return self.train_y.cpu()

    @property
    def test_labels(self) -> torch.Tensor:
        """int64 CPU tensor of the test labels."""
        return self.test_y.cpu()

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return len(self.train_y)  # no copy off the device, unlike len(train_labels)

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return len(self.test_y)

    def _split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)

    def _read(self, split: str, order: torch.Tensor | None, slices: list[slice]) -> Iterator[Batch]:
        x_all, y_all = self._split(split)
        if self.deliver_to is None:  # resident: one gather per batch, where the tensors are
            order = None if order is None else order.to(x_all.device)
            for sl in slices:
                idx = sl if order is None else order[sl]
                yield x_all[idx], y_all[idx]
            return
        # host storage: gather into pinned memory, copy to the device without blocking
        device = self.deliver_to
        order = torch.arange(len(y_all)) if order is None else order
        order_dev, y_dev = order.to(device), y_all.to(device)
        for sl in slices:
            idx = order[sl]
            buf = torch.empty(
                (len(idx), *x_all.shape[1:]), dtype=x_all.dtype, pin_memory=x_all.is_pinned()
            )
            torch.index_select(x_all, 0, idx, out=buf)
            yield buf.to(device, non_blocking=True), y_dev[order_dev[sl]]

    def _take(self, train, test) -> InMemoryDataSet:
        parts = {}
        for key, (split, index) in (("train", train), ("test", test)):
            x, y = self._split(split)
            index = index.to(x.device)
            pinned = x.is_pinned()
            x, y = x[index], y[index]
            if pinned:  # host storage of a set placed for a GPU stays pinned
                x, y = x.pin_memory(), y.pin_memory()
            parts[f"{key}_x"], parts[f"{key}_y"] = x, y
        return dataclasses.replace(self, **parts)

    def to(self, device: torch.device | str) -> InMemoryDataSet:
        """A copy with every tensor on ``device`` (dtypes kept), batches made there."""
        keys = ("train_x", "train_y", "test_x", "test_y")
        moved = {k: getattr(self, k).to(device) for k in keys}
        return dataclasses.replace(self, **moved, deliver_to=None)

    def place(self, device: torch.device | str) -> InMemoryDataSet:
        """The set for training on ``device``: on a GPU, resident when it takes under 40 % of
        the free memory, else in pinned host memory with batches copied without blocking (module
        docstring); on any other device, :meth:`to`."""
        device = torch.device(device)
        if device.type != "cuda":
            return self.to(device)
        nbytes = sum(t.numel() * t.element_size() for t in (self.train_x, self.test_x))
        free, _ = torch.cuda.mem_get_info(device)
        if nbytes < _FIT_FRACTION * free:
            return self.to(device)
        keys = ("train_x", "train_y", "test_x", "test_y")
        pinned = {k: getattr(self, k).cpu().pin_memory() for k in keys}
        return dataclasses.replace(self, **pinned, deliver_to=device)
