"""What a resumed run may change, and the check that it changed nothing else.

A checkpoint (:mod:`biofa.train.checkpoint`) stores the run's resolved configuration
(``run_config``: the ``circuit()`` keywords and every ``Train`` field, as the command line or
:func:`biofa.train.fit` passed it) and the SHA-256 of its spec file. ``fit(..., resume=True)``
compares them with the run it is asked to continue: a run continues only with the same circuit,
the same training and the same spec file, except for the settings in :data:`RESUMABLE` -- how
long it trains, how often it records, evaluates and checkpoints, and where its data lives. A
change of one of those is recorded in the run file's ``resumed`` attribute (one line per resume).
With ``schedule="cosine"`` a change of ``epochs`` or ``max_steps`` changes the schedule from the
resumed step on (it anneals to zero over the new total).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from biofa.train import checkpoint

__all__ = ["RESUMABLE", "changes", "check", "describe", "load_states", "plain", "restore"]

log = logging.getLogger(__name__)

#: ``Train`` fields a resumed run may change (everything else must equal the checkpoint's)
RESUMABLE = ("epochs", "max_steps", "checkpoint_every", "record_every", "eval_every", "data_root")

# run_config entries that say where things are or what they are called, not what the run is
_LOCATIONS = ("spec_path", "run")


def plain(value: Any) -> Any:
    """``value`` as JSON holds it (tuples as lists, anything else unusual as its ``repr``): what
    a checkpoint stores and compares."""
    return json.loads(json.dumps(value, default=repr))


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = plain(value)
    return out


def changes(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """``(allowed, refused)``: the entries of two run configurations that differ, each
    ``name -> (before, after)`` with dotted names (``train.lr``); ``allowed`` holds the changes of
    :data:`RESUMABLE` ``Train`` fields."""
    a, b = _flat(before), _flat(after)
    allowed: dict[str, tuple] = {}
    refused: dict[str, tuple] = {}
    for key in sorted(set(a) | set(b)):
        if key in _LOCATIONS:
            continue
        old, new = a.get(key, "(unset)"), b.get(key, "(unset)")
        if old != new:
            resumable = key.startswith("train.") and key.split(".", 1)[1] in RESUMABLE
            (allowed if resumable else refused)[key] = (old, new)
    return allowed, refused


def describe(diff: Mapping[str, tuple], limit: int = 6) -> str:
    """``train.lr 0.05 -> 0.001, circuit.width 8 -> 16`` (at most ``limit`` entries)."""
    parts = [f"{key} {_short(old)} -> {_short(new)}" for key, (old, new) in diff.items()]
    more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 24 else f"{text[:12]}...{text[-8:]}"


def load_states(
    checkpoints: Sequence[Path], identities: Sequence[dict], device: torch.device
) -> tuple[list[dict], str] | None:
    """The checkpoints of a run's seeds, checked against their identities (``{"config": ...,
    "spec_sha256": ..., "declaration": ...}``), and the line recording the resume; ``None``
    (said in the log) when there is none.

    Raises
    ------
    ValueError
        One line: some seeds' checkpoints missing, a file that is not a readable checkpoint, or
        a checkpoint of another configuration (naming the keys that differ).
    """
    present = [p.exists() for p in checkpoints]
    if not any(present):
        log.warning("no checkpoint %s: starting from step 0", checkpoints[0])
        return None
    if not all(present):
        missing = [str(p) for p, here in zip(checkpoints, present) if not here]
        raise ValueError(f"cannot resume: the batched seeds' checkpoints {missing} are missing")
    states = [checkpoint.load(p, device) for p in checkpoints]
    allowed = [check(p, s, i) for p, s, i in zip(checkpoints, states, identities, strict=True)]
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    line = f"{when} resumed at step {states[0]['step']}"
    return states, line + (f": {describe(allowed[0], limit=20)}" if allowed[0] else "")


def check(path: Path, state: Mapping[str, Any], identity: Mapping[str, Any]) -> dict:
    """The allowed changes from the checkpoint's run to ``identity``; ``ValueError`` naming the
    refused ones."""
    stored = state.get("identity")
    if stored is None:  # version 2: written before checkpoints kept their configuration
        log.warning("%s predates stored configurations: resuming without checking it", path)
        return {}
    allowed, refused = changes(stored["config"], identity["config"])
    for key in ("spec_sha256", "declaration"):
        old, new = stored.get(key) or "", identity.get(key) or ""
        if old and new and old != new and not (key == "declaration" and refused):
            refused[key if key != "declaration" else "circuit declaration"] = (old, new)
    if refused:
        raise ValueError(
            f"cannot resume from {path}: it was trained with another configuration "
            f"({describe(refused)}); a resumed run may change only {', '.join(RESUMABLE)} "
            "(start over without --resume, or use another --out)"
        )
    return allowed


def restore(states: Sequence[dict], path: Path, stepper, schedulers, recorders, total: int):
    """Load ``states`` into the stepper, schedulers and recorders; return ``(step, elapsed,
    summary, loss_sum, correct, seen, bad_step)``. ``ValueError`` (one line) when a state does
    not fit (another width, another optimiser's state, a recorder of other projections)."""
    step = int(states[0]["step"])
    if step > total:
        raise ValueError(
            f"cannot resume from {path}: it is at step {step}, beyond this run's {total} steps"
        )
    try:
        stepper.load_run_states(states)
        for sch, s in zip(schedulers, states[0]["schedulers"], strict=True):
            sch.load_state_dict(s)
        for rec, s in zip(recorders, states, strict=True):
            rec.load_state_dict(s["recorder"])
        running = [s["running"] for s in states]
        sums = tuple(torch.stack([r[i] for r in running]) for i in (0, 1, 3))
    except (RuntimeError, ValueError, KeyError, IndexError, TypeError) as exc:
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:240]
        raise ValueError(
            f"cannot resume from {path}: it does not fit this run ({why}); start over without "
            "--resume, or use another --out"
        ) from None
    elapsed, summary = states[0]["elapsed"], states[0]["summary"]
    return step, elapsed, summary, sums[0], sums[1], running[0][2], sums[2]
