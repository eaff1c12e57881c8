"""Data sets: the :class:`DataSource` contract, a registry of named sets, ImageFolder paths.

``biofa.data.load(name_or_path)`` returns a :class:`DataSource`: a registered set (built in:
``"digits"`` embedded, and torchvision's ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``,
``"svhn"``; or one a user registered with :func:`register_dataset` or through the entry-point
group ``biofa.datasets``), or an ImageFolder directory or ``.zip`` held in memory
(:class:`InMemoryDataSet`) or streamed from disk (:class:`StreamingDataSet`). Every source
delivers the same deterministic, normalised, optionally augmented batches
(:meth:`DataSource.train_batches`), and gives fixed stratified subsets and validation splits
(:meth:`DataSource.subset`, :meth:`DataSource.split_validation`).

This package is a leaf: it imports nothing from biofa outside it.
"""

# the built-in sets register themselves on import, as a user's file would
from biofa.data import digits as _digits  # noqa: F401
from biofa.data import torchvision_sets as _torchvision_sets  # noqa: F401
from biofa.data.augmentation import augment_crop_flip
from biofa.data.base import DataSource
from biofa.data.errors import DataNotFoundError, MissingExtraError
from biofa.data.memory import InMemoryDataSet
from biofa.data.pixels import PixelSet, pixels
from biofa.data.registry import available, describe, load, register_dataset
from biofa.data.streaming import StreamingDataSet

__all__ = [
    "DataNotFoundError",
    "DataSource",
    "InMemoryDataSet",
    "MissingExtraError",
    "PixelSet",
    "StreamingDataSet",
    "augment_crop_flip",
    "available",
    "describe",
    "load",
    "pixels",
    "register_dataset",
]
