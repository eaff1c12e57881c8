"""Data sets: embedded digits, torchvision sets, ImageFolder directories and zips."""

from biofa.data.memory import (
    NAMES,
    DataNotFoundError,
    DataSet,
    augment_crop_flip,
    load,
    steps_per_epoch,
    test_batches,
    train_batches,
)

__all__ = [
    "NAMES",
    "DataNotFoundError",
    "DataSet",
    "augment_crop_flip",
    "load",
    "steps_per_epoch",
    "test_batches",
    "train_batches",
]
