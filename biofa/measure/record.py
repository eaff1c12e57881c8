"""The :class:`Recorder`: metric snapshots during training -> one netCDF4 file per run.

Schema of the file (DESIGN section 6)::

    coords  rule, seed, <each swept key>   length-1 dims, so xr.combine_by_coords stacks a sweep
            step (dim), epoch (on step)     optimiser step of each record
            projection (dim), source, target, op, <each further label> (on projection:
            feedback_rule, source_population, target_population; ``"*"``: the whole area)
    vars    <run metric>(rule, seed, ..., step)                    float64, NaN where not recorded
            <projection metric>(rule, seed, ..., step, projection)  float64
            run_config(rule, seed, ...)                             resolved config, JSON string
    attrs   Conventions, title, source, biofa_version, created, history, status, + those passed

Every coordinate has a ``long_name``. The per-projection labels are whatever the caller gives
(a mapping per projection; the training loop adds ``feedback_rule``, see
:mod:`biofa.train.provenance`). Only metrics that were recorded at least once become variables;
each carries ``long_name`` and ``units`` from the metric registry (:mod:`biofa.measure.registry`).
Writes are atomic (temporary file in the target directory, then :func:`os.replace`), honour the
umask like any other file, store integers as int32 where they fit (CF's ``int``) and are
compressed (zlib level 4).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from biofa._version import __version__
from biofa.measure.netcdf import history, write_netcdf
from biofa.measure.registry import RESERVED_NAMES, registered

__all__ = ["LABELS", "Recorder", "write_netcdf"]

Scalar = float | int | torch.Tensor
_STATE_VERSION = 1
_COORD_TYPES = (str, bool, int, float, np.bool_, np.integer, np.floating)
#: The per-projection labels every run file has, and their ``long_name``.
LABELS = {
    "projection": "projection",
    "source": "source area",
    "target": "target area",
    "op": "operation",
}


def _check_attrs(attrs: Mapping[str, Any]) -> dict[str, str | int | float]:
    """Global attrs must be str or numbers (netCDF has no bool, dict or None): bool -> int."""
    out: dict[str, str | int | float] = {}
    for key, value in attrs.items():
        if isinstance(value, bool | np.bool_):
            value = int(value)
        elif isinstance(value, np.integer | np.floating):
            value = value.item()
        elif not isinstance(value, str | int | float):
            raise ValueError(
                f"attr {key!r}={value!r} has type {type(value).__name__}; "
                "allowed: str, int, float (bool is stored as int)"
            )
        out[str(key)] = value
    return out


def _to_floats(values: Sequence[Scalar]) -> list[float]:
    """Python floats from scalars/0-d tensors; tensors on one device go to the CPU in one copy."""
    out: list[float | None] = [None] * len(values)
    by_device: dict[torch.device, list[int]] = {}
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor):
            if v.numel() != 1:
                raise ValueError(f"metric values must be scalars; got shape {tuple(v.shape)}")
            by_device.setdefault(v.device, []).append(i)
        else:
            out[i] = float(v)
    for device, idx in by_device.items():
        dtype = torch.float32 if device.type == "mps" else torch.float64
        stacked = torch.stack([values[i].detach().reshape(()).to(dtype) for i in idx])  # type: ignore[union-attr]
        for i, x in zip(idx, stacked.cpu().tolist(), strict=True):
            out[i] = float(x)
    return out  # type: ignore[return-value]


def _labels(projections: Sequence[Mapping[str, str] | Sequence[str]]) -> dict[str, list[str]]:
    """Label name -> one str per projection (the four of :data:`LABELS` first)."""
    rows = []
    for p in projections:
        if isinstance(p, Mapping):
            rows.append({str(k): str(v) for k, v in p.items()})
        elif isinstance(p, Sequence) and not isinstance(p, str) and len(p) == len(LABELS):
            rows.append({k: str(v) for k, v in zip(LABELS, p, strict=True)})
        else:
            raise ValueError(
                f"projections: {p!r} must be a mapping of labels (projection, source, target, "
                "op, ...) or a tuple (name, source, target, op)"
            )
    keys = list(LABELS) + [k for k in dict.fromkeys(k for r in rows for k in r) if k not in LABELS]
    for row in rows:
        missing = [k for k in keys if k not in row]
        if missing:
            name = row.get("projection", row)
            raise ValueError(
                f"projections: {name!r} has no labels {missing}; every projection needs "
                f"{keys} (the same labels for all)"
            )
    return {k: [r[k] for r in rows] for k in keys}


def _coord_long_name(key: str) -> str:
    if key == "rule":
        return "learning rule of the run"
    if key == "seed":
        return "random seed of the run"
    return f"swept key {key}"


class Recorder:
    """Collect metric snapshots during a run and write them as one netCDF4 file.

    Parameters
    ----------
    projections
        The labels of each projection: a mapping ``label -> str`` with at least ``projection``
        (its name), ``source``, ``target`` and ``op``, e.g. ``{"projection": "v1->v2", "source":
        "v1", "target": "v2", "op": "conv2d", "feedback_rule": "feedback_alignment"}``. Every
        label becomes a coordinate on ``projection``; every projection must have the same
        labels. A tuple ``(name, source, target, op)`` stands for the four required ones. May be
        empty.
    coords
        Run coordinates: must include ``"rule"`` and ``"seed"``, plus every swept key. Each becomes
        a length-1 dimension (``rule`` and ``seed`` first, then the others in the given order).
        Values: str, bool, int or float (bool round-trips through netCDF as xarray encodes it).
    run_config
        The resolved configuration; stored as JSON (non-JSON values via ``str``) in ``run_config``.
    attrs
        Extra global attributes (``title``, ``source``, ``spec_source``, ``spec_sha256``,
        ``device``, ``command``, ...): str, int or float; bool is stored as int, anything else is
        an error. ``command`` also goes into the ``history`` attribute.
    label_long_names
        ``long_name`` of labels beyond :data:`LABELS` (default: the name, ``_`` as spaces).
    """

    def __init__(
        self,
        *,
        projections: Sequence[Mapping[str, str] | tuple[str, str, str, str]],
        coords: Mapping[str, str | bool | int | float],
        run_config: Mapping[str, Any],
        attrs: Mapping[str, str | int | float],
        label_long_names: Mapping[str, str] | None = None,
    ) -> None:
        self.labels = _labels(projections)
        #: ``(name, source, target, op)`` per projection (what a checkpoint's state compares)
        self.projections = list(zip(*(self.labels[k] for k in LABELS), strict=True))
        names = self.labels["projection"]
        if len(set(names)) != len(names):
            raise ValueError(f"projections: duplicate names in {names}")
        self._pindex = {n: i for i, n in enumerate(names)}
        self._long_names = {
            **{k: k.replace("_", " ") for k in self.labels},
            **LABELS,
            **dict(label_long_names or {}),
        }
        missing = [k for k in ("rule", "seed") if k not in coords]
        if missing:
            raise ValueError(f"coords: missing {missing}; 'rule' and 'seed' are required")
        order = ["rule", "seed"] + [k for k in coords if k not in ("rule", "seed")]
        self.coords: dict[str, str | bool | int | float] = {}
        for key in order:
            value = coords[key]
            if key in RESERVED_NAMES or key in registered() or key in self.labels:
                raise ValueError(f"coords: {key!r} is reserved by the output schema")
            if not isinstance(value, _COORD_TYPES):
                raise ValueError(
                    f"coords: {key}={value!r} has type {type(value).__name__}; "
                    "allowed: str, bool, int, float"
                )
            self.coords[key] = value.item() if isinstance(value, np.generic) else value
        clash = sorted(set(self.labels) & set(registered()))
        if clash:
            raise ValueError(f"projections: labels {clash} are metric names; rename them")
        self.run_config = json.dumps(dict(run_config), sort_keys=True, default=str)
        self.attrs = _check_attrs(attrs)
        self._steps: list[int] = []
        self._epochs: list[int] = []
        self._row: dict[int, int] = {}
        self._run: dict[str, list[float]] = {}  # name -> value per row
        self._proj: dict[str, list[list[float]]] = {}  # name -> [row][projection]

    def _check_name(self, name: str, per: str) -> None:
        known = registered()
        info = known.get(name)
        if info is None:
            raise ValueError(f"unknown metric {name!r}; registered: {', '.join(sorted(known))}")
        if info.per != per:
            where = "values" if info.per == "run" else "per_projection"
            raise ValueError(f"metric {name!r} is per {info.per!r}: pass it in {where}=")

    def record(
        self,
        step: int,
        epoch: int,
        values: Mapping[str, Scalar] | None = None,
        per_projection: Mapping[str, Mapping[str, Scalar]] | None = None,
    ) -> None:
        """Record metric values at an optimiser step.

        Parameters
        ----------
        step, epoch
            Optimiser step and epoch. Recording a step again merges into it (later values win);
            its epoch must then be the same.
        values
            Run-level metric name -> scalar (float or 0-d tensor on any device).
        per_projection
            Projection-level metric name -> {projection name -> scalar}; projections left out
            are NaN at this step.

        Raises
        ------
        ValueError
            For an unregistered metric, a metric at the wrong level, an unknown projection, a
            non-scalar value or a step re-recorded with another epoch.
        """
        values = dict(values or {})
        per_projection = {k: dict(v) for k, v in (per_projection or {}).items()}
        for name in values:
            self._check_name(name, "run")
        for name, by_proj in per_projection.items():
            self._check_name(name, "projection")
            unknown = [p for p in by_proj if p not in self._pindex]
            if unknown:
                raise ValueError(
                    f"metric {name!r}: unknown projections {unknown}; known: {list(self._pindex)}"
                )
        flat = list(values.values()) + [v for d in per_projection.values() for v in d.values()]
        floats = iter(_to_floats(flat))
        step, epoch = int(step), int(epoch)
        row = self._row.get(step)
        if row is None:
            row = self._new_row(step, epoch)
        elif self._epochs[row] != epoch:
            raise ValueError(
                f"step {step} was recorded with epoch {self._epochs[row]}, now epoch {epoch}"
            )
        for name in values:
            if name not in self._run:
                self._run[name] = [math.nan] * len(self._steps)
            self._run[name][row] = next(floats)
        nproj = len(self.projections)
        for name, by_proj in per_projection.items():
            if name not in self._proj:
                self._proj[name] = [[math.nan] * nproj for _ in self._steps]
            for pname in by_proj:
                self._proj[name][row][self._pindex[pname]] = next(floats)

    def _new_row(self, step: int, epoch: int) -> int:
        self._row[step] = len(self._steps)
        self._steps.append(step)
        self._epochs.append(epoch)
        for col in self._run.values():
            col.append(math.nan)
        for rows in self._proj.values():
            rows.append([math.nan] * len(self.projections))
        return self._row[step]

    def to_dataset(self, status: str = "complete") -> xr.Dataset:
        """The run as an :class:`xarray.Dataset` with the schema above, steps in ascending order.

        Parameters
        ----------
        status
            Stored as the ``status`` attr: ``"complete"``, ``"running"``, ``"diverged: <msg>"``...
        """
        if not isinstance(status, str) or not status:
            raise ValueError(f"status must be a non-empty str; got {status!r}")
        order = np.argsort(np.asarray(self._steps, dtype=np.int64), kind="stable")
        cdims = tuple(self.coords)
        ones = (1,) * len(cdims)
        coords: dict[str, Any] = {
            k: (k, np.array([v]), {"long_name": _coord_long_name(k)})
            for k, v in self.coords.items()
        }
        coords["step"] = (
            "step",
            np.asarray(self._steps, np.int64)[order],
            {"long_name": "optimiser step", "units": "1"},
        )
        coords["epoch"] = (
            "step",
            np.asarray(self._epochs, np.int64)[order],
            {"long_name": "epoch", "units": "1"},
        )
        for key, col in self.labels.items():
            long_name = self._long_names[key]
            coords[key] = ("projection", np.array(col, dtype=str), {"long_name": long_name})
        data: dict[str, Any] = {}
        for name, col in self._run.items():
            arr = np.asarray(col, np.float64)[order].reshape(ones + (-1,))
            data[name] = (cdims + ("step",), arr, self._var_attrs(name))
        for name, rows in self._proj.items():
            arr = np.asarray(rows, np.float64).reshape(len(rows), len(self.projections))
            arr = arr[order].reshape(ones + arr.shape)
            data[name] = (cdims + ("step", "projection"), arr, self._var_attrs(name))
        config = np.array(self.run_config, dtype=str).reshape(ones)
        data["run_config"] = (cdims, config, {"long_name": "resolved run configuration (JSON)"})
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        command = self.attrs.get("command")
        attrs = {
            "Conventions": "CF-1.8",
            "title": "biofa run",
            "source": f"biofa {__version__}",
            **self.attrs,
            "biofa_version": __version__,
            "created": created,
            "history": history(created, str(command) if command else None),
            "status": status,
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)

    @staticmethod
    def _var_attrs(name: str) -> dict[str, str]:
        info = registered()[name]
        return {"long_name": info.long_name, "units": info.units}

    def write(self, path: str | os.PathLike, status: str = "complete") -> Path:
        """Write the run atomically to ``path`` (netCDF4, zlib level 4); return the path.

        The file is written to a hidden temporary file in the same directory, flushed to disk
        and renamed over ``path``, so readers never see a partial file. Parent directories are
        created.
        """
        return write_netcdf(self.to_dataset(status), path)

    def state_dict(self) -> dict[str, Any]:
        """Recorded data as plain Python containers (``torch.load(weights_only=True)``-safe)."""
        return {
            "version": _STATE_VERSION,
            "projections": [list(p) for p in self.projections],
            "steps": list(self._steps),
            "epochs": list(self._epochs),
            "run": {k: list(v) for k, v in self._run.items()},
            "proj": {k: [list(r) for r in v] for k, v in self._proj.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore recorded data from :meth:`state_dict` (same projections required)."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"recorder state version {state.get('version')!r} != {_STATE_VERSION}")
        projections = [tuple(p) for p in state["projections"]]
        if projections != self.projections:
            raise ValueError(
                f"recorder state has projections {projections}, this run has {self.projections}"
            )
        unknown = [n for n in (*state["run"], *state["proj"]) if n not in registered()]
        if unknown:
            raise ValueError(f"recorder state has unregistered metrics {unknown}")
        self._steps = [int(s) for s in state["steps"]]
        self._epochs = [int(e) for e in state["epochs"]]
        self._row = {s: i for i, s in enumerate(self._steps)}
        self._run = {k: [float(x) for x in v] for k, v in state["run"].items()}
        self._proj = {k: [[float(x) for x in r] for r in v] for k, v in state["proj"].items()}
