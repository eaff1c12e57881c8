"""Data sets by name: :func:`register_dataset`, :func:`available`, :func:`load`.

A data set is a name and a loader, ``loader(root: str) -> DataSource``; ``root`` is
``Train.data_root`` (the folder a loader may read or download to; ``""`` for its default). The
built-in sets register themselves exactly as a user's would (``biofa/data/digits.py``,
``biofa/data/torchvision_sets.py``); a user's own set is one call in their own file, e.g. the
spec file::

    import biofa.data

    def blobs(root: str) -> biofa.data.DataSource:
        ...
        return biofa.data.InMemoryDataSet.from_tensors("blobs", train_x, train_y, test_x, test_y)

    biofa.data.register_dataset("blobs", blobs, description="two Gaussian blobs")

after which ``Train(data="blobs")`` trains on it. An installed package can provide one through
the entry-point group ``biofa.datasets`` (the entry point is the loader; a broken one warns and
is skipped)::

    [project.entry-points."biofa.datasets"]
    my_set = "my_package.data:load_my_set"

:func:`load` resolves a registered name first, then a path to an ImageFolder directory or
``.zip`` (in memory, or streamed from disk with ``stream=True``), and checks what it returns
(:meth:`DataSource.check`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from biofa.data import imagefolder, streaming
from biofa.data.base import DataSource

__all__ = ["available", "describe", "load", "register_dataset"]

Loader = Callable[[str], DataSource]


@dataclass(frozen=True)
class _Entry:
    loader: Loader
    description: str


_REGISTRY: dict[str, _Entry] = {}  # in registration order: built-ins first
_entry_points_loaded = False


def _origin(loader) -> str:
    """Where ``loader`` is defined: ``module.qualname``, and its file for a function."""
    module = getattr(loader, "__module__", None) or type(loader).__module__
    qualname = getattr(loader, "__qualname__", None) or repr(loader)
    code = getattr(loader, "__code__", None)
    return f"{module}.{qualname}" + (f" ({code.co_filename})" if code is not None else "")


def _same(a, b) -> bool:
    """The same loader, or a function of the same name in the same file (a spec file imported
    again gets a new module name from the CLI, and a notebook cell re-run a new function)."""
    if a is b or a == b:
        return True
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    if code_a is None or code_b is None:
        return False
    return a.__qualname__ == b.__qualname__ and code_a.co_filename == code_b.co_filename


def register_dataset(name: str, loader: Loader, *, description: str = "") -> Loader:
    """Register ``loader`` as data set ``name``; returns ``loader``.

    Parameters
    ----------
    name
        The name ``Train(data=...)`` and :func:`load` accept: a non-empty string without a path
        separator. It wins over a folder of the same name (write ``./name`` for the folder).
    loader
        ``loader(root: str) -> DataSource``; called by every :func:`load` of ``name``.
    description
        One line for listings (:func:`describe`).

    Raises
    ------
    ValueError
        ``name`` is empty, holds ``/``, or is registered already with another loader.
    TypeError
        ``name`` is not a string or ``loader`` is not callable.
    """
    if not isinstance(name, str):
        raise TypeError(f"register_dataset: name must be a str, not {type(name).__name__}")
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"register_dataset: name {name!r} must be non-empty, without '/' or '\\'")
    if not callable(loader):
        raise TypeError(
            f"register_dataset({name!r}, ...): loader must be callable "
            f"(root: str) -> DataSource, not {type(loader).__name__}"
        )
    existing = _REGISTRY.get(name)
    if existing is not None and not _same(existing.loader, loader):
        raise ValueError(
            f"data set {name!r} is already registered by {_origin(existing.loader)}; "
            "choose another name"
        )
    _REGISTRY[name] = _Entry(loader, str(description))
    return loader


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in metadata.entry_points(group="biofa.datasets"):
        try:
            register_dataset(entry.name, entry.load())
        except Exception as exc:  # a broken plug-in must not break biofa
            warnings.warn(
                f"could not load data set entry point {entry.name!r} ({entry.value}): {exc}",
                stacklevel=3,
            )


def available() -> list[str]:
    """Names of every registered data set, built-ins first, then in registration order."""
    _load_entry_points()
    return list(_REGISTRY)


def describe(name: str) -> str:
    """The one-line description data set ``name`` was registered with."""
    _load_entry_points()
    if name not in _REGISTRY:
        raise ValueError(f"unknown data set {name!r}; registered: {', '.join(available())}")
    return _REGISTRY[name].description


def _looks_like_path(data: str) -> bool:
    return "/" in data or "\\" in data or data.startswith(("~", ".")) or data.endswith(".zip")


def load(data: str, *, root: str = "", stream: bool = False) -> DataSource:
    """The data set ``data``, on the CPU (for training, see :meth:`DataSource.place`).

    Parameters
    ----------
    data
        A registered name (:func:`available`: ``"digits"``, ``"mnist"``, ``"fashion_mnist"``,
        ``"cifar10"``, ``"svhn"`` and any registered by the user or an entry point), or a path
        to an ImageFolder directory or ``.zip`` holding ``train/<class>/*`` and
        ``test/<class>/*`` (at its root or inside one top-level folder).
    root
        Passed to the loader of a registered name: where torchvision sets live or are
        downloaded to (default ``$BIOFA_DATA`` or ``~/.cache/biofa/data``).
    stream
        For an ImageFolder path: read batches from disk through DataLoader workers instead of
        decoding every image into memory (:mod:`biofa.data.streaming`; for sets too large for
        RAM).

    Raises
    ------
    ValueError
        ``data`` is neither registered nor an existing path (the message lists the registered
        names), the path has no ImageFolder layout, or the set is one a classifier cannot learn
        from (:meth:`DataSource.check`).
    DataNotFoundError
        A torchvision set is absent and cannot be downloaded (subclass of both
        ``FileNotFoundError`` and ``ValueError``).
    MissingExtraError
        A set needs an optional dependency (subclass of ``ImportError`` and ``ValueError``).
    """
    if not isinstance(data, str):
        raise TypeError(f"data must be a data set name or a path, not {type(data).__name__}")
    names = available()
    if data in _REGISTRY:
        if stream:
            raise ValueError(
                f"stream=True reads an ImageFolder directory or .zip, not the "
                f"registered data set {data!r}; in-memory sets need no streaming"
            )
        source = _REGISTRY[data].loader(root)
        if not isinstance(source, DataSource):
            raise TypeError(
                f"the loader of data set {data!r} ({_origin(_REGISTRY[data].loader)}) returned "
                f"{type(source).__name__}, not a biofa.data.DataSource"
            )
        return source.check()
    path = Path(data).expanduser()
    if path.exists():
        found = streaming.open_stream(path) if stream else imagefolder.load_image_folder(path)
        return found.check()
    if _looks_like_path(data):
        raise ValueError(
            f"data={data!r}: no such file or directory (expected an ImageFolder "
            "directory or .zip with train/<class>/* and test/<class>/*)"
        )
    raise ValueError(
        f"data={data!r} is neither a registered data set ({', '.join(names)}) nor an existing "
        "path to an ImageFolder directory or .zip (train/<class>/*, test/<class>/*)"
    )
