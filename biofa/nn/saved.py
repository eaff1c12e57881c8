"""Trained models on disk: ``<run>.model.pt`` beside each run's ``<run>.nc``.

A training run (:func:`biofa.train.fit`) keeps its final model: the compiled circuit's state dict
plus everything needed to rebuild it without the spec file -- the circuit's declaration as plain
data (:mod:`biofa.nn.declaration`), the input shape, the class count, the seed, whether weight
norms were held -- and what it was trained on: the data set's name, class names and normalisation
statistics, and the run's configuration. The file holds tensors, strings, numbers, lists and dicts
only, so ``torch.load(path, weights_only=True)`` reads it and loading it never runs code.

:func:`load_model` gives the trained :class:`~biofa.nn.compiler.CompiledCircuit` back (in eval
mode, with ``.circuit``, ``.input_shape``, ``.num_classes`` and ``.info``, the stored metadata).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from biofa.nn import declaration
from biofa.nn.compiler import CompiledCircuit
from biofa.nn.norms import hold_weight_norms

__all__ = ["FORMAT", "load_model", "model_path", "save_model"]

FORMAT = "biofa-model"
VERSION = 1


def model_path(run: str | os.PathLike) -> Path:
    """The model file of a run file: ``runs/x/rule-fa_seed-0.nc`` -> ``...seed-0.model.pt``."""
    path = Path(run)
    return path.with_name(f"{path.name.removesuffix('.nc')}.model.pt")


def save_model(
    model: CompiledCircuit,
    path: str | os.PathLike,
    *,
    seed: int = 0,
    held_norms: bool = False,
    data: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` to ``path`` atomically (module docstring); return the path.

    Parameters
    ----------
    model
        The trained compiled circuit (tensors are copied to the CPU).
    seed, held_norms
        The seed it was compiled with and whether ``hold_weight_norms`` was applied.
    data
        ``name``, ``classes``, ``mean``, ``std`` of the data it was trained on.
    run
        What else to keep: the run's configuration, coordinates, step.
    """
    path = Path(path)
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "circuit": declaration.encode(model.circuit),
        "input_shape": list(model.input_shape),
        "num_classes": int(model.num_classes),
        "seed": int(seed),
        "held_norms": bool(held_norms),
        "state_dict": state,
        "data": dict(data or {}),
        "run": _plain(run or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> CompiledCircuit:
    """The trained model stored at ``path`` (a ``.model.pt`` file, or its run's ``.nc``).

    Returns
    -------
    CompiledCircuit
        In eval mode on ``device``, with ``.circuit`` (the declaration), ``.input_shape``,
        ``.num_classes`` and ``.info`` (``{"data": {name, classes, mean, std}, "run": {...},
        "path": ...}``).

    Raises
    ------
    ValueError
        For a missing or unreadable file, a file that is not a biofa model, or a circuit that
        cannot be rebuilt (one line each).
    """
    path = Path(path)
    if path.suffix == ".nc":
        path = model_path(path)
    if not path.is_file():
        raise ValueError(
            f"model file not found: {path} (a run that completed keeps its final model as "
            "<run>.model.pt beside <run>.nc)"
        )
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, random bytes, another program's pickle
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
        raise ValueError(f"model file {path} cannot be read ({why})") from None
    if not isinstance(stored, dict) or stored.get("format") != FORMAT:
        raise ValueError(f"{path} is not a biofa model file")
    if stored.get("version") != VERSION:
        raise ValueError(
            f"model file {path} has format version {stored.get('version')!r}; this biofa reads "
            f"version {VERSION}"
        )
    try:
        circuit = declaration.decode(stored["circuit"])
        model = CompiledCircuit(
            circuit, tuple(stored["input_shape"]), int(stored["num_classes"]), int(stored["seed"])
        )
        if stored["held_norms"]:
            hold_weight_norms(model)
        model.load_state_dict(stored["state_dict"])
    except (ValueError, TypeError, KeyError, AttributeError, RuntimeError) as exc:
        why = " ".join(str(exc).split())[:200]
        raise ValueError(f"model file {path}: its circuit cannot be rebuilt ({why})") from None
    model.info = {"data": stored["data"], "run": stored["run"], "path": str(path)}
    return model.to(device).eval()


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists and anything else unusual as its ``repr``."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
