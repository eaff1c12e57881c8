"""Names and coordinates of runs: what identifies a sweep point in file names and in netCDF.

A point's coordinates are its ``rule`` and ``seed`` plus every swept key; values become what a
netCDF coordinate holds (:func:`coord_value`), and the file name joins them
(:func:`run_name`: ``{"rule": "fa", "seed": 0}`` -> ``rule-fa_seed-0``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from biofa import rules
from biofa.train.config import Train

__all__ = ["coord_value", "point_coords", "run_name"]


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


def run_name(coords: Mapping[str, Any]) -> str:
    """A filesystem-safe run name: ``{"rule": "fa", "seed": 0}`` -> ``"rule-fa_seed-0"``."""
    return "_".join(
        f"{key}-{re.sub(r'[^A-Za-z0-9.+_-]', '-', str(value))}" for key, value in coords.items()
    )
