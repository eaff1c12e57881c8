r"""The contract every data set implements: :class:`DataSource`.

A source holds a training and a test split of labelled images ``(C, H, W)`` and delivers them as
normalised float32 batches on its device. What differs between sources is only where the raw
images live (tensors in memory: :class:`~biofa.data.InMemoryDataSet`; files on disk read by
DataLoader workers: :class:`~biofa.data.StreamingDataSet`), so a subclass implements storage
(:meth:`DataSource._read`, :meth:`DataSource._take`, :meth:`DataSource.to`) and this class owns
everything else, once:

- **Normalisation** per channel from the training statistics ``mean``/``std``
  (:mod:`biofa.data.normalization`).
- **Epoch order and augmentation.** Epoch ``e`` of seed ``s`` is the permutation drawn from a
  generator seeded by ``(s, e)`` only, followed on the same generator by the epoch's
  augmentation draws (crop offset and flip for every position, :mod:`biofa.data.augmentation`).
  Batch ``b`` is positions ``b*B .. (b+1)*B - 1`` of that permutation, so it is the same whether
  an iteration starts at 0 or at ``start_batch <= b`` (resuming mid-epoch), and every kind of
  source gives the same batches for the same examples.
- **Subsets and validation splits** chosen by :mod:`biofa.data.selection` (stratified, fixed by
  a hash of the index, independent of any run seed).
- **Checks** that refuse a data set a classifier cannot learn from (:meth:`DataSource.check`).
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterator

import torch

from biofa.data.augmentation import crop_flip, draw
from biofa.data.normalization import normalize
from biofa.data.selection import stratified_choice

__all__ = ["Batch", "DataSource", "epoch_generator"]

Batch = tuple[torch.Tensor, torch.Tensor]
_PADDING = 4  # of the crop augmentation
_SUBSET_SALT, _VALIDATION_SALT = b"biofa.subset:", b"biofa.validation:"


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """CPU generator seeded from ``(seed, epoch)`` only (BLAKE2b, so streams are unrelated)."""
    digest = hashlib.blake2b(f"biofa.data:{int(seed)}:{int(epoch)}".encode(), digest_size=8)
    return torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)


def _count(value, what: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


class DataSource(abc.ABC):
    """A labelled image data set with a training and a test split (module docstring).

    Attributes
    ----------
    name
        Short name, recorded with every run (``"digits"``, or the stem of an ImageFolder path).
    classes
        Class names; label ``k`` is ``classes[k]``.
    mean, std
        Per-channel mean and population standard deviation of the training images on the
        [0, 1] scale; every batch is normalised with them.
    """

    name: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    # ------------------------------------------------------------------ storage (subclasses)
    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one example."""

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """Where batches are delivered."""

    @property
    @abc.abstractmethod
    def train_labels(self) -> torch.Tensor:
        """int64 CPU tensor ``(n_train,)`` of the training labels, in storage order."""

    @property
    @abc.abstractmethod
    def test_labels(self) -> torch.Tensor:
        """int64 CPU tensor ``(n_test,)`` of the test labels, in storage order."""

    @abc.abstractmethod
    def _read(self, split: str, order: torch.Tensor | None, slices: list[slice]) -> Iterator[Batch]:
        """Raw images and labels of ``split`` ("train" or "test") at ``order[sl]`` for each
        slice (CPU int64 ``order``; ``None``: storage order), on :attr:`device`, in sequence."""

    @abc.abstractmethod
    def _take(self, train: tuple[str, torch.Tensor], test: tuple[str, torch.Tensor]):
        """A source of the same kind and statistics whose training examples are those of split
        ``train[0]`` at indices ``train[1]`` (CPU int64, kept in that order), likewise ``test``."""

    @abc.abstractmethod
    def to(self, device: torch.device | str) -> DataSource:
        """A source delivering its batches on ``device``."""

    def place(self, device: torch.device | str) -> DataSource:
        """The source to train from on ``device`` (default: :meth:`to`)."""
        return self.to(device)

    # ------------------------------------------------------------------------ shared properties
    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return len(self.train_labels)

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return len(self.test_labels)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, {self.num_classes} classes, "
            f"{self.n_train} train / {self.n_test} test, {self.input_shape}, {self.device})"
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw batch -> float32 ``(x/255 - mean)/std`` (no ``/255`` if float), on x's device."""
        return normalize(x, self.mean, self.std)

    # ---------------------------------------------------------------------------------- batches
    def steps_per_epoch(self, batch_size: int, drop_last: bool = False) -> int:
        """Number of training batches per epoch."""
        n = self.n_train
        return n // batch_size if drop_last else -(-n // batch_size)

    def train_batches(
        self,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        augment: bool = False,
        start_batch: int = 0,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """Shuffled, normalised training batches of one epoch, on :attr:`device`.

        Parameters
        ----------
        batch_size
            Examples per batch; the last batch is smaller unless ``drop_last``.
        seed, epoch
            The only inputs of the epoch's permutation and augmentation draws (module docstring).
        augment
            Zero-pad by 4, crop back at a random offset and flip with probability 1/2, per
            example (:func:`biofa.data.augment_crop_flip`), on the device, before normalising.
        start_batch
            First batch to deliver; batch ``b`` is the same for every ``start_batch <= b``.
        drop_last
            Leave out the last, incomplete batch.

        Returns
        -------
        Iterator of ``(x, y)``: ``x`` float32 ``(B, C, H, W)`` normalised, ``y`` int64 ``(B,)``.
        """
        if batch_size <= 0 or start_batch < 0:
            raise ValueError(
                f"need batch_size > 0 and start_batch >= 0, got {batch_size}, {start_batch}"
            )
        return self._epoch(batch_size, seed, epoch, augment, start_batch, drop_last)

    def _epoch(self, batch_size, seed, epoch, augment, start_batch, drop_last) -> Iterator[Batch]:
        n = self.n_train
        g = epoch_generator(seed, epoch)
        perm = torch.randperm(n, generator=g)
        draws = [d.to(self.device) for d in draw(n, _PADDING, g)] if augment else None
        steps = self.steps_per_epoch(batch_size, drop_last)
        slices = [slice(b * batch_size, (b + 1) * batch_size) for b in range(start_batch, steps)]
        for sl, (x, y) in zip(slices, self._read("train", perm, slices)):
            if draws is not None:
                x = crop_flip(x, *(d[sl] for d in draws), padding=_PADDING)
            yield self.normalize(x), y

    def test_batches(self, batch_size: int) -> Iterator[Batch]:
        """Test batches in storage order, normalised, never augmented, on :attr:`device`."""
        if batch_size <= 0:
            raise ValueError(f"need batch_size > 0, got {batch_size}")
        slices = [slice(i, i + batch_size) for i in range(0, self.n_test, batch_size)]
        return ((self.normalize(x), y) for x, y in self._read("test", None, slices))

    def train_examples(self, index: torch.Tensor) -> Batch:
        """Raw (not normalised, not augmented) training images and labels at ``index``."""
        return next(self._read("train", torch.as_tensor(index).long(), [slice(None)]))

    def test_examples(self, index: torch.Tensor) -> Batch:
        """Raw (not normalised) test images and labels at ``index``."""
        return next(self._read("test", torch.as_tensor(index).long(), [slice(None)]))

    # -------------------------------------------------------------------- subsets and splits
    def subset(self, train: int | None = None, test: int | None = None) -> DataSource:
        """A source with ``train`` training and ``test`` test examples (``None``: all of them).

        Each split's examples are chosen stratified by class (per-class counts by the largest
        remainder of ``n * N_k / N``) and fixed: the same for every run and seed
        (:mod:`biofa.data.selection`). They keep their storage order, and the normalisation
        statistics stay those of the whole training split, so a subset's batches hold exactly
        the values the full source gives for those examples.

        Raises
        ------
        ValueError
            A count below 1 or above the split's size.
        """
        picks = []
        for split, n, labels in (
            ("train", train, self.train_labels),
            ("test", test, self.test_labels),
        ):
            if n is None:
                picks.append((split, torch.arange(len(labels))))
                continue
            n = _count(n, f"subset({split}=...)", minimum=1)
            if n > len(labels):
                raise ValueError(
                    f"subset({split}={n}): data {self.name!r} has only {len(labels)} "
                    f"{split} examples"
                )
            mask = stratified_choice(labels, n, _SUBSET_SALT + split.encode())
            picks.append((split, torch.nonzero(mask).flatten()))
        return self._take(*picks)

    def split_validation(self, n: int) -> tuple[DataSource, DataSource]:
        """Hold out ``n`` training examples for validation: ``(train_part, validation_part)``.

        The held-out examples are chosen stratified by class and fixed, as in :meth:`subset`.
        ``train_part`` trains on the other ``n_train - n`` examples and keeps the test split;
        ``validation_part`` has the same training examples and the held-out ones as its test
        split, so ``validation_part.test_batches(...)`` iterates them (in storage order, never
        augmented). Both keep this source's normalisation statistics.

        Raises
        ------
        ValueError
            ``n`` not in ``1 .. n_train - 1``.
        """
        n = _count(n, "split_validation(n=...)", minimum=1)
        if n >= self.n_train:
            raise ValueError(
                f"split_validation(n={n}): data {self.name!r} has only {self.n_train} training "
                f"examples; need 1 <= n < {self.n_train}"
            )
        held = stratified_choice(self.train_labels, n, _VALIDATION_SALT)
        keep = ("train", torch.nonzero(~held).flatten())
        train_part = self._take(keep, ("test", torch.arange(self.n_test)))
        validation_part = self._take(keep, ("train", torch.nonzero(held).flatten()))
        return train_part, validation_part

    # ------------------------------------------------------------------------------- checks
    def check(self) -> DataSource:
        """Refuse what a classifier cannot learn from; returns ``self``.

        Raises
        ------
        ValueError
            Fewer than two classes (declared, or present among the training labels), an empty
            split, or labels outside ``0 .. num_classes - 1``.
        """
        what = f"data {self.name!r}"
        if self.num_classes < 2:
            only = f" ({self.classes[0]!r})" if self.classes else ""
            raise ValueError(
                f"{what} has {self.num_classes} class{only}; a classifier needs at least two"
            )
        for split, labels in (("training", self.train_labels), ("test", self.test_labels)):
            if len(labels) == 0:
                raise ValueError(f"{what} has no {split} examples")
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= self.num_classes:
                raise ValueError(
                    f"{what}: {split} labels span {lo}..{hi}; they must be class indices "
                    f"0..{self.num_classes - 1} (one per entry of classes)"
                )
        present = torch.unique(self.train_labels)
        if len(present) < 2:
            raise ValueError(
                f"{what}: all {self.n_train} training examples are of one class "
                f"({self.classes[int(present[0])]!r}); a classifier needs at least two"
            )
        return self
