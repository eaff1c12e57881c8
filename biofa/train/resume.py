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
from collections.abc import Mapping
from typing import Any

__all__ = ["RESUMABLE", "changes", "describe"]

#: ``Train`` fields a resumed run may change (everything else must equal the checkpoint's)
RESUMABLE = ("epochs", "max_steps", "checkpoint_every", "record_every", "eval_every", "data_root")

# run_config entries that say where things are, not what the run is
_LOCATIONS = ("spec_path",)


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = json.loads(json.dumps(value, default=repr))  # tuples as lists
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
