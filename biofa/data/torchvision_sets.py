"""``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"svhn"``: torchvision's data sets.

Read from a root folder (``Train.data_root``, default ``$BIOFA_DATA`` or ``~/.cache/biofa/data``),
downloaded there when absent and the network allows, and held in memory as uint8 tensors. Offline
and absent, :class:`~biofa.data.DataNotFoundError` says which files to put where. Needs the
``vision`` extra (``pip install 'biofa[vision]'``). Each is registered like any user's data set
(:func:`biofa.data.register_dataset`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from biofa.data.errors import DataNotFoundError, MissingExtraError
from biofa.data.memory import InMemoryDataSet
from biofa.data.registry import register_dataset

__all__ = ["TorchvisionSet"]

# torchvision class name, folder under root, what must be there, description
_SETS = {
    "mnist": (
        "MNIST",
        "MNIST/raw",
        "train-images-idx3-ubyte.gz and the other three IDX files",
        "MNIST handwritten digits, 28x28 grey: 60000 / 10000",
    ),
    "fashion_mnist": (
        "FashionMNIST",
        "FashionMNIST/raw",
        "the four Fashion-MNIST IDX files",
        "Fashion-MNIST clothing, 28x28 grey: 60000 / 10000",
    ),
    "cifar10": (
        "CIFAR10",
        "",
        "cifar-10-python.tar.gz (or its folder cifar-10-batches-py/)",
        "CIFAR-10 objects, 32x32 colour: 50000 / 10000",
    ),
    "svhn": (
        "SVHN",
        "",
        "train_32x32.mat and test_32x32.mat",
        "SVHN house numbers, 32x32 colour: 73257 / 26032",
    ),
}


def data_root(root: str = "") -> Path:
    """``root``, else ``$BIOFA_DATA``, else ``~/.cache/biofa/data``."""
    return Path(root or os.environ.get("BIOFA_DATA", "") or "~/.cache/biofa/data").expanduser()


@dataclass(frozen=True)
class TorchvisionSet:
    """The loader of torchvision data set ``name`` (a key of the module's table)."""

    name: str

    def __call__(self, root: str = "") -> InMemoryDataSet:
        name = self.name
        try:
            from torchvision import datasets
        except ImportError as err:
            raise MissingExtraError(
                f"data={name!r} needs torchvision: pip install 'biofa[vision]'"
            ) from err
        cls_name, sub, files, _ = _SETS[name]
        base = data_root(root)
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
                    f"data={name!r} is not in {base / sub} and could not be downloaded ({why}); "
                    f"put {files} in {base / sub} (or set BIOFA_DATA / data_root to the folder "
                    "holding them), or pass the path of an ImageFolder directory or .zip "
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
        named = name in ("fashion_mnist", "cifar10")
        classes = getattr(splits[0], "classes", None) if named else None
        return InMemoryDataSet.from_tensors(name, *out, classes or [str(k) for k in range(10)])


for _name, (*_, _description) in _SETS.items():
    register_dataset(_name, TorchvisionSet(_name), description=_description)
