"""Names and coordinates of runs: what identifies a sweep point in file names and in netCDF.

A point's coordinates are its ``rule`` and ``seed`` plus every swept key; values become what a
netCDF coordinate holds (:func:`coord_value`). Its file name (:func:`run_name`) joins ``rule``,
``seed`` and the swept keys the point itself sets (``rule-fa_seed-0_width-32``) and, when any
other resolved setting differs from the spec's defaults, ``_cfg-`` and the first 8 hex digits of
the SHA-256 of those settings (:func:`nondefaults`, :func:`config_hash`). So

* two runs whose configurations differ never share a name (``--set lr=1e-3`` is not the default
  run), and a run with the spec's defaults keeps the plain name;
* adding a sweep point with a new key renames no other point (the key is in the name only of the
  points that set it);
* the settings a resumed run may change (:data:`biofa.train.resume.RESUMABLE`: ``epochs``,
  ``max_steps``, ``record_every``, ...) are not part of the name, so ``--resume --set epochs=20``
  finds the run's checkpoint; two such runs share a file, and the command line refuses to
  replace one with the other unless asked (:mod:`biofa.cli.outputs`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from biofa import rules
from biofa.train.config import Train
from biofa.train.resume import RESUMABLE

__all__ = ["config_hash", "coord_value", "name_keys", "nondefaults", "point_coords", "run_name"]


def point_coords(kwargs: dict, train: Train, circuit: Any, swept: list[str]) -> dict[str, Any]:
    """``rule`` (the ``rule`` argument, else the circuit's rules joined by ``+``), ``seed`` and
    each swept key's value."""
    rule = kwargs.get("rule")
    if not isinstance(rule, str) or not rule:
        rule = "+".join(rules.used_by(circuit))
    coords: dict[str, Any] = {"rule": rule, "seed": train.seed}
    for key in swept:
        if key not in coords:
            value = kwargs[key] if key in kwargs else getattr(train, key)
            coords[key] = coord_value(value)
    return coords


def name_keys(coords: Mapping[str, Any], point: Mapping[str, Any]) -> list[str]:
    """The coordinates in a run's name: ``rule``, ``seed`` and the keys its sweep point sets."""
    return [key for key in coords if key in ("rule", "seed") or key in point]


def nondefaults(spec: Any, kwargs: Mapping[str, Any], train: Train, skip: list[str]) -> dict:
    """The resolved settings of a run that differ from ``spec``'s defaults (``circuit()``'s
    parameter defaults and the spec's ``train``), leaving out ``skip`` and the resumable
    ``Train`` fields."""
    out: dict[str, Any] = {}
    for name, param in spec.circuit_params.items():
        if name not in skip and (
            param.default is param.empty or not _same(kwargs[name], param.default)
        ):
            out[name] = kwargs[name]
    for name in Train.field_names():
        if name in skip or name in RESUMABLE or name in spec.circuit_params:
            continue
        if not _same(getattr(train, name), getattr(spec.train, name)):
            out[name] = getattr(train, name)
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        if a == b:
            return True
    except Exception:  # noqa: BLE001, S110 - e.g. arrays: compare their text below
        pass
    return _canonical(a) == _canonical(b)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def config_hash(settings: Mapping[str, Any]) -> str:
    """The first 8 hex digits of the SHA-256 of ``settings`` as sorted JSON."""
    return hashlib.sha256(_canonical(dict(settings)).encode()).hexdigest()[:8]


def coord_value(value: Any) -> str | int | float:
    """``value`` as something a netCDF coordinate holds: str, int or float."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return ",".join(str(coord_value(v)) for v in value)
    if hasattr(value, "item"):  # numpy scalars
        return coord_value(value.item())
    return str(value)


def run_name(coords: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    """A filesystem-safe run name: ``{"rule": "fa", "seed": 0}`` -> ``"rule-fa_seed-0"``, with
    ``_cfg-<config_hash(extra)>`` when ``extra`` (settings not in ``coords``) is not empty."""
    name = "_".join(
        f"{key}-{re.sub(r'[^A-Za-z0-9.+_-]', '-', str(value))}" for key, value in coords.items()
    )
    return f"{name}_cfg-{config_hash(extra)}" if extra else name
