"""The checks :func:`~biofa.spiking.validate` makes before any Brian2 work: one-line
``ValueError`` / ``TypeError`` naming the argument, the value and what is allowed."""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any

from biofa.data import DataSource
from biofa.nn import CompiledCircuit
from biofa.spiking.network import SpikingNetwork

__all__ = ["check_model_matches_data", "check_validate_arguments"]

_SETTLE = inspect.signature(SpikingNetwork.__init__).parameters["settle"].default


def _integer(name: str, value: Any, least: int, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"validate: {name}={value!r} must be an integer ({meaning})")
    if value < least:
        allowed = "a positive integer" if least == 1 else f"an integer >= {least}"
        raise ValueError(f"validate: {name}={value!r} must be {allowed} ({meaning})")


def _seconds(name: str, value: Any, meaning: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"validate: {name}={value!r} must be a number of seconds ({meaning})")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"validate: {name}={value!r} must be a positive number of seconds")
    return float(value)


def check_validate_arguments(
    *,
    n_images: Any,
    duration: Any,
    copies: Any,
    raster_images: Any,
    bin_width: Any,
    settle: Any = _SETTLE,
) -> None:
    """The numbers of :func:`~biofa.spiking.validate`: counts are integers (``n_images`` and
    ``copies`` at least 1, ``raster_images`` at least 0), times positive seconds with
    ``settle < duration`` and ``bin_width <= duration``."""
    _integer("n_images", n_images, 1, "test images shown; at least the test set's size: all")
    _integer("copies", copies, 1, "copies of the network simulated side by side")
    _integer("raster_images", raster_images, 0, "images whose spikes are kept")
    length = _seconds("duration", duration, "how long each image is shown")
    width = _seconds("bin_width", bin_width, "the bin of population_rate")
    if width > length:
        raise ValueError(
            f"validate: bin_width={bin_width!r} s must be at most duration={duration!r} s"
        )
    if isinstance(settle, numbers.Real) and not 0 <= settle < length:
        raise ValueError(
            f"validate: settle={settle!r} s must be in [0, duration={duration!r} s): rates are "
            "counted from settle to the end of each image"
        )


def check_model_matches_data(model: CompiledCircuit, data: DataSource) -> None:
    """``model`` was compiled for images and classes like ``data``'s."""
    shape, classes = tuple(model.input_shape), model.num_classes
    if shape != tuple(data.input_shape):
        raise ValueError(
            f"validate: the model takes inputs of shape {shape} (C, H, W), data "
            f"{data.name!r} has {tuple(data.input_shape)}; validate it on the data it was "
            "trained on"
        )
    if classes != data.num_classes:
        raise ValueError(
            f"validate: the model has {classes} classes, data {data.name!r} has "
            f"{data.num_classes}; validate it on the data it was trained on"
        )
