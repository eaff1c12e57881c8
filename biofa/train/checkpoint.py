"""Checkpoints: one file per run (``<run>.ckpt`` beside ``<run>.nc``), written atomically and
loadable with ``torch.load(weights_only=True)``.

A checkpoint holds a run's model, optimiser, schedule and gradient-scaler state, its recorder's
records, the step, the elapsed time and the running sums since the last record, so a resumed run
continues the same trajectory bit for bit; and the run's identity (its resolved configuration,
the spec file's SHA-256 and the circuit declaration's fingerprint) and resume history, which
``--resume`` checks and records (:mod:`biofa.train.resume`). It has the same format whether the
run trained alone or with other seeds in one batched computation: :func:`run_optimizer_state`
takes seed ``k``'s part of a stacked optimiser's state, :func:`merge_optimizer_states` stacks
``K`` runs' parts again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["load", "merge_optimizer_states", "run_optimizer_state", "save"]

VERSION = 3
#: versions :func:`load` reads (2: before checkpoints kept the run's identity, ``identity``)
READABLE = (2, 3)


def save(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically (a temporary file in the same folder, then rename);
    the folder is created if it went missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save({"version": VERSION, **state}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path, device: torch.device) -> dict[str, Any]:
    """The checkpoint at ``path`` (``weights_only=True``); ``ValueError`` in one line when it is not
    a readable biofa checkpoint of this version."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated, random bytes, another program's file
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise ValueError(
            f"checkpoint {path} cannot be read ({why}); start over with --overwrite (or delete it)"
        ) from None
    if not isinstance(state, dict) or state.get("version") not in READABLE:
        found = state.get("version") if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"checkpoint {path} is not a biofa checkpoint of version {VERSION} (found {found!r})"
        )
    return state


def _params(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def run_optimizer_state(optimizer: torch.optim.Optimizer, k: int) -> dict[str, Any]:
    """Run ``k``'s part of the state of an optimiser over stacked (seed-first) parameters: every
    per-parameter tensor sliced at ``k`` (and copied), scalars (Adam's ``step``) as they are."""
    full = optimizer.state_dict()
    params = _params(optimizer)
    state = {
        i: {
            key: v[k].clone() if isinstance(v, Tensor) and v.shape == params[i].shape else v
            for key, v in entry.items()
        }
        for i, entry in full["state"].items()
    }
    return {"state": state, "param_groups": full["param_groups"]}


def merge_optimizer_states(
    optimizer: torch.optim.Optimizer, states: list[dict[str, Any]]
) -> dict[str, Any]:
    """The stacked optimiser state of ``K`` runs' states (the inverse of
    :func:`run_optimizer_state`), to load into ``optimizer``."""
    params = _params(optimizer)
    first = states[0]
    merged = {}
    for i, entry in first["state"].items():
        merged[i] = {}
        for key, v in entry.items():
            if isinstance(v, Tensor) and (len(states),) + tuple(v.shape) == tuple(params[i].shape):
                merged[i][key] = torch.stack([s["state"][i][key] for s in states])
            else:
                merged[i][key] = v
    return {"state": merged, "param_groups": first["param_groups"]}
