"""A data set as raw intensities in [0, 1]: the same images, without per-channel standardisation.

Every :class:`~biofa.data.DataSource` standardises its batches per channel
(:mod:`biofa.data.normalization`). Some models need the pixels themselves: a Dale's ANN (Cornford
et al. 2021) is built for non-negative inputs (its interneurons' drive, and so its divisive
normalisation, must stay positive), and the authors train it on ``x / 255``. :func:`pixels` gives
the same source with mean 0 and standard deviation 1, so its batches are ``x / 255`` for uint8
images; :class:`PixelSet` is a loader for :func:`~biofa.data.register_dataset`::

    register_dataset("mnist_pixels", PixelSet("mnist-png.zip"))   # $BIOFA_DATA/mnist-png.zip
    Train(data="mnist_pixels")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from biofa.data.base import DataSource
from biofa.data.registry import load
from biofa.data.torchvision_sets import data_root

__all__ = ["PixelSet", "pixels"]


def pixels(source: DataSource) -> DataSource:
    """``source`` delivering intensities in [0, 1] (module docstring)."""
    channels = len(source.mean)
    return dataclasses.replace(source, mean=(0.0,) * channels, std=(1.0,) * channels)


@dataclass(frozen=True)
class PixelSet:
    """Loader of ``data`` (a registered name, or an ImageFolder directory or ``.zip``; a relative
    path is found under the loader's ``root``, else ``$BIOFA_DATA``) as raw intensities."""

    data: str

    def __call__(self, root: str = "") -> DataSource:
        data = self.data
        if data.endswith(".zip") or "/" in data:
            path = Path(data).expanduser()
            data = str(path if path.is_absolute() else data_root(root) / path)
        return pixels(load(data, root=root))
