"""Read run files written by :class:`biofa.measure.record.Recorder` back as one
:class:`xarray.Dataset`.

Each run file has length-1 dimensions for ``rule``, ``seed`` and every swept key, so combining a
sweep is xarray's ``combine_by_coords`` on those coordinates (:mod:`biofa.measure.combine`)::

    ds = biofa.open_runs("runs/ei_cnn")          # dims (rule, seed, step, projection)
    ds.feedback_angle.mean("seed").sel(projection="v2->v1").plot.line(x="step")

Files that cannot be combined meaningfully are refused before that: runs of different circuits or
data sets (unless ``mixed="allow"``), and runs with different run coordinates.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from biofa.measure.combine import combine

__all__ = ["open_runs"]

MIXED = ("raise", "warn", "allow")

_REQUIRED = ("run_config", "step", "epoch", "projection", "source", "target", "op")


def _accepted(status: object, include: Sequence[str]) -> bool:
    """``"diverged: loss is nan"`` counts as ``"diverged"``."""
    if not isinstance(status, str):
        return False
    return status in include or status.split(":", 1)[0].strip() in include


def _files(path: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    if isinstance(path, str | os.PathLike):
        p = Path(path)
        if p.is_dir():
            files = sorted(p.rglob("*.nc"))
            if not files:
                raise ValueError(f"open_runs: no run files (*.nc) in {p}")
            return files
        if not p.exists():
            raise FileNotFoundError(f"open_runs: {p}: no such file or directory")
        return [p]
    return [Path(p) for p in path]


def _open(file: Path) -> xr.Dataset:
    with xr.open_dataset(file, engine="netcdf4") as ds:
        return ds.load()


def open_runs(
    path: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    include_status: Sequence[str] = ("complete", "diverged"),
    mixed: str = "raise",
) -> xr.Dataset:
    """Open run files and combine them into one Dataset.

    Parameters
    ----------
    path
        A directory (searched recursively for ``*.nc``), one file, or a list of files.
    include_status
        Accepted values of a file's ``status`` attr. A status ``"diverged: <msg>"`` counts as
        ``"diverged"``. Other files (``"running"``: a crashed or unfinished run) are skipped
        with a warning, as are files that fail to open (truncated, not netCDF).
    mixed
        What to do with runs of different circuits or data sets (the ``circuit`` and ``data``
        attributes, unless one is a run coordinate, i.e. swept, or every file comes from the same
        spec file, ``spec_sha256``, whose sweep may choose them): ``"raise"`` (a ``ValueError``
        naming the files of each), ``"warn"`` (combine them, with that message as a warning) or
        ``"allow"`` (combine them).

    Returns
    -------
    xarray.Dataset
        Dims ``(rule, seed, <swept keys>, step, projection)``; cells of runs with other step
        grids, of missing sweep points or of projections a run does not have are NaN (``""``
        for strings). Each file's ``status`` attr becomes the data variable ``status`` with the
        run dims; global attrs that differ between files (``created``, ``history``) are dropped.
        ``epoch`` and the projection labels (``source``, ``target``, ``op``, ``feedback_rule``)
        are coordinates on ``step`` / ``projection`` where every run agrees, and per run (with
        the run dims too) where they differ, e.g. ``feedback_rule`` in a sweep over rules.

    Raises
    ------
    FileNotFoundError
        If ``path`` (one path) does not exist.
    ValueError
        If no file is usable, runs have different run coordinates, or (``mixed="raise"``) they
        are of different circuits or data sets.
    """
    if mixed not in MIXED:
        raise ValueError(f"open_runs: mixed={mixed!r} must be one of {', '.join(map(repr, MIXED))}")
    include = tuple(include_status)
    datasets, files = [], []
    for file in _files(path):
        try:
            ds = _open(file)
        except Exception as err:  # any unreadable file is skipped, by design
            warnings.warn(f"open_runs: skipping {file}: cannot open ({err})", stacklevel=2)
            continue
        missing = [n for n in _REQUIRED if n not in ds.variables]
        if missing:
            warnings.warn(
                f"open_runs: skipping {file}: not a run file (no {missing})", stacklevel=2
            )
            continue
        status = ds.attrs.get("status")
        if not _accepted(status, include):
            warnings.warn(
                f"open_runs: skipping {file}: status {status!r} not in {include}", stacklevel=2
            )
            continue
        dims = ds["run_config"].dims
        shape = tuple(ds.sizes[d] for d in dims)
        ds["status"] = (dims, np.full(shape, status), {"long_name": "run status"})
        del ds.attrs["status"]  # per run: the ``status`` variable
        datasets.append(ds)
        files.append(file)
    if not datasets:
        raise ValueError(f"open_runs: no usable run files in {path!s}")
    datasets, files = _one_per_cell(datasets, files)
    _check_mixed(datasets, files, mixed)
    try:
        return combine(datasets)
    except ValueError as err:  # what xarray refuses; one line, naming the files
        names = _some(files)
        raise ValueError(f"open_runs: cannot combine {names}: {err}".replace("\n", " ")) from err


def _one_per_cell(datasets: list[xr.Dataset], files: list[Path]) -> tuple[list, list]:
    """Refuse runs with other run coordinates; of two files of one run, keep the later."""
    run_dims = datasets[0]["run_config"].dims
    cells: dict[tuple, int] = {}
    for i, (ds, file) in enumerate(zip(datasets, files, strict=True)):
        if set(ds["run_config"].dims) != set(run_dims):
            raise ValueError(
                f"open_runs: {file} has run coordinates {ds['run_config'].dims}, "
                f"{files[0]} has {run_dims}; open them separately"
            )
        cell = tuple(ds[d].values.item() for d in run_dims)
        if cell in cells:
            warnings.warn(
                f"open_runs: {file} repeats run {cell} of {files[cells[cell]]}; using {file}",
                stacklevel=3,
            )
        cells[cell] = i
    keep = sorted(cells.values())
    return [datasets[i] for i in keep], [files[i] for i in keep]


def _identity(ds: xr.Dataset) -> dict[str, str]:
    """What a sweep's runs share: circuit and data set (from the attributes, or from
    ``run_config`` in files older than the ``circuit`` attribute)."""
    try:
        config = json.loads(str(ds["run_config"].values.ravel()[0]))
    except ValueError:
        config = {}
    circuit = ds.attrs.get("circuit") or config.get("circuit_name") or config.get("circuit")
    data = ds.attrs.get("data") or (config.get("train") or {}).get("data")
    found = {"circuit": circuit, "data": data}
    return {k: str(v) for k, v in found.items() if isinstance(v, str | int | float)}


def _check_mixed(datasets: list[xr.Dataset], files: list[Path], mixed: str) -> None:
    specs = {str(ds.attrs.get("spec_sha256", "")) for ds in datasets}
    if len(specs) == 1 and "" not in specs:  # one spec's sweep: a swept key may pick the circuit
        return
    run_dims = set(datasets[0]["run_config"].dims)
    groups: dict[tuple, list[Path]] = {}
    for ds, file in zip(datasets, files, strict=True):
        key = tuple((k, v) for k, v in _identity(ds).items() if k not in run_dims)
        groups.setdefault(key, []).append(file)
    if len(groups) < 2 or mixed == "allow":
        return
    parts = [
        f"{' '.join(f'{k} {v!r}' for k, v in key) or 'unknown'}: {_some(group)}"
        for key, group in groups.items()
    ]
    message = (
        f"open_runs: these runs are of different circuits or data sets: {'; '.join(parts)}; "
        "open them separately, or pass mixed='allow' to combine them"
    )
    if mixed == "raise":
        raise ValueError(message)
    warnings.warn(message, stacklevel=3)


def _some(files: list[Path], n: int = 3) -> str:
    """``a.nc, b.nc, c.nc (+2 more)``."""
    more = f" (+{len(files) - n} more)" if len(files) > n else ""
    return ", ".join(map(str, files[:n])) + more
