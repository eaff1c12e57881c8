"""The data one run trains, validates and tests on, as its :class:`~biofa.train.config.Train`
selects them from the loaded data set.

* ``validation=N``: ``N`` training examples (stratified by class, fixed for every run and seed:
  :meth:`biofa.data.DataSource.split_validation`) are held out of training; the periodic
  evaluations measure them (``validation_accuracy``) and the test set is measured once, at the end
  (``test_accuracy``), so nothing is chosen by looking at the test set.
* ``train_subset=N``: train on a fixed, stratified subset of ``N`` of the (remaining) training
  examples (:meth:`~biofa.data.DataSource.subset`).
* ``test_subset=M``: evaluate on a fixed, stratified subset of ``M`` test examples (quick looks:
  the final number of a paper's table is on the whole test set).

The validation examples are chosen first, from the whole training split, so a run on a subset
validates on the same examples as a run on everything; normalisation statistics stay those of
the whole training split.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from biofa.data import DataSource
from biofa.train.config import Train

__all__ = ["RunData", "select"]


class RunData(NamedTuple):
    """``train`` (its test split is the test set) and the held-out ``validation`` source (its
    test split is the held-out examples), or ``None``."""

    train: DataSource
    validation: DataSource | None = None

    def place(self, device: torch.device) -> RunData:
        val = None if self.validation is None else self.validation.place(device)
        return RunData(self.train.place(device), val)


def select(data: DataSource, train: Train) -> RunData:
    """The sources ``train`` asks for (module docstring); ``ValueError`` naming the field when a
    count does not fit the data set."""
    validation = None
    if train.validation:
        if train.validation >= data.n_train:
            raise ValueError(
                f"Train.validation={train.validation}: data {data.name!r} has only "
                f"{data.n_train} training examples"
            )
        data, validation = data.split_validation(train.validation)
    for field, n, have in (
        ("train_subset", train.train_subset, data.n_train),
        ("test_subset", train.test_subset, data.n_test),
    ):
        if n > have:
            raise ValueError(
                f"Train.{field}={n}: data {data.name!r} has only {have} "
                f"{'training' if field == 'train_subset' else 'test'} examples"
                + (" left after the validation split" if field == "train_subset" and validation
                   else "")
            )  # fmt: skip
    if train.train_subset or train.test_subset:
        data = data.subset(train=train.train_subset or None, test=train.test_subset or None)
    return RunData(data, validation)
