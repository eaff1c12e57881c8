"""Evaluate a trained model on a data set: :func:`evaluate` (``biofa.evaluate``).

The model is a :class:`~biofa.nn.compiler.CompiledCircuit` or a model file
(:func:`biofa.nn.saved.load_model`), the data a :class:`~biofa.data.DataSource` or a registered
name. The images are normalised with the statistics of the data the model was trained on when
the model knows them (``normalization="model"``, the default for a loaded model; a network sees
inputs scaled as in training), else with the evaluated set's own (``"data"``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from biofa.data import DataSource
from biofa.data import load as load_data
from biofa.data.normalization import normalize
from biofa.nn.compiler import CompiledCircuit
from biofa.nn.saved import load_model

__all__ = ["check_data", "evaluate"]

log = logging.getLogger(__name__)


def check_data(model: CompiledCircuit, data: DataSource) -> None:
    """``ValueError`` in one line unless ``data``'s images and classes fit ``model``."""
    if tuple(data.input_shape) != tuple(model.input_shape):
        raise ValueError(
            f"data {data.name!r} has images of shape {tuple(data.input_shape)} (C, H, W); the "
            f"model was built for {tuple(model.input_shape)}"
        )
    if data.num_classes != model.num_classes:
        raise ValueError(
            f"data {data.name!r} has {data.num_classes} classes; the model has "
            f"{model.num_classes} outputs"
        )
    trained = getattr(model, "info", {}).get("data", {}).get("classes")
    if trained and list(trained) != list(data.classes):
        log.warning(
            "data %r names its classes %s; the model was trained on classes %s (label k is "
            "compared with output k)",
            data.name,
            ", ".join(map(str, data.classes[:5])),
            ", ".join(map(str, trained[:5])),
        )


def evaluate(
    model: CompiledCircuit | str | os.PathLike,
    data: DataSource | str,
    *,
    batch_size: int = 256,
    normalization: str = "model",
    device: str | torch.device | None = None,
) -> float:
    """Test accuracy (fraction correct) of ``model`` on ``data``'s test split.

    Parameters
    ----------
    model
        A compiled circuit, or the path of a model file or of its run's ``.nc``.
    data
        A data source or a registered data set's name (``"digits"``, ``"mnist"``, a folder...).
    batch_size
        Images per forward pass.
    normalization
        ``"model"``: normalise with the training data's statistics stored with the model (the
        evaluated set's own when the model has none); ``"data"``: with the evaluated set's.
    device
        Where to run (the model is moved there; default: where its parameters are).

    Raises
    ------
    ValueError
        When the images' shape or the number of classes does not fit the model, for a bad
        ``normalization`` or ``batch_size``, or for a model file that cannot be loaded.
    """
    if normalization not in ("model", "data"):
        raise ValueError(f"normalization={normalization!r} must be 'model' or 'data'")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size={batch_size!r} must be a positive int")
    if not isinstance(model, CompiledCircuit):
        model = load_model(model)
    data = load_data(data) if isinstance(data, str) else data
    check_data(model, data)
    stats: dict[str, Any] = getattr(model, "info", {}).get("data", {})
    mean, std = data.mean, data.std
    if normalization == "model" and stats.get("mean") and stats.get("std"):
        mean, std = tuple(stats["mean"]), tuple(stats["std"])
    if device is not None:
        model = model.to(device)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for start in range(0, data.n_test, batch_size):
                index = torch.arange(start, min(start + batch_size, data.n_test))
                raw, labels = data.test_examples(index)
                x = normalize(raw.to(device), mean, std)
                correct += int((model(x).argmax(1) == labels.to(device)).sum())
    finally:
        model.train(was_training)
    return correct / data.n_test
