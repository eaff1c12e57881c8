"""Read run files written by :class:`biofa.measure.record.Recorder` back as one
:class:`xarray.Dataset`.

Each run file has length-1 dimensions for ``rule``, ``seed`` and every swept key, so combining a
sweep is an outer join on those coordinates::

    ds = biofa.open_runs("runs/ei_cnn")          # dims (rule, seed, step, projection)
    ds.feedback_angle.mean("seed").sel(projection="v2->v1").plot.line(x="step")
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["open_runs"]

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
            return sorted(p.rglob("*.nc"))
        return [p]
    return [Path(p) for p in path]


def _open(file: Path) -> xr.Dataset:
    with xr.open_dataset(file, engine="netcdf4") as ds:
        return ds.load()


def open_runs(
    path: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    include_status: Sequence[str] = ("complete", "diverged"),
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

    Returns
    -------
    xarray.Dataset
        Dims ``(rule, seed, <swept keys>, step, projection)``; cells of runs with other step
        grids, or of missing sweep points, are NaN. Each file's ``status`` attr becomes the data
        variable ``status`` with the run dims; global attrs that differ between files (``created``)
        are dropped.

    Raises
    ------
    ValueError
        If no file is usable.
    """
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
        datasets.append(ds)
        files.append(file)
    if not datasets:
        raise ValueError(f"open_runs: no usable run files in {path!s}")
    return _combine(datasets, files)


def _union(lists: Iterable[Iterable]) -> list:
    """Union of values in first-seen order."""
    return list(dict.fromkeys(v for values in lists for v in values))


def _combine(datasets: list[xr.Dataset], files: list[Path]) -> xr.Dataset:
    """Outer join of single-run datasets on (run dims, step, projection), NaN/"" where missing.

    Done by hand rather than with ``xr.combine_by_coords``: that one treats a ``step`` grid that
    differs between runs as a dimension to concatenate along, and refuses incomplete sweeps.
    """
    run_dims = datasets[0]["run_config"].dims
    for ds, file in zip(datasets, files, strict=True):
        if set(ds["run_config"].dims) != set(run_dims):
            raise ValueError(
                f"open_runs: {file} has run coordinates {ds['run_config'].dims}, "
                f"{files[0]} has {run_dims}; open them separately"
            )
    index = {d: sorted(_union(ds[d].values.tolist() for ds in datasets)) for d in run_dims}
    index["step"] = sorted(_union(ds["step"].values.tolist() for ds in datasets))
    index["projection"] = _union(ds["projection"].values.tolist() for ds in datasets)
    pos = {d: {v: i for i, v in enumerate(vals)} for d, vals in index.items()}
    sizes = {d: len(v) for d, v in index.items()}

    def positions(ds: xr.Dataset, dims: Sequence[str]) -> tuple:
        return np.ix_(*([pos[d][v] for v in ds[d].values.tolist()] for d in dims))

    out: dict[str, np.ndarray] = {}
    dims_of: dict[str, tuple[str, ...]] = {}
    attrs_of: dict[str, dict] = {}
    seen: dict[tuple, Path] = {}
    for ds, file in zip(datasets, files, strict=True):
        cell = tuple(ds[d].values.item() for d in run_dims)
        if cell in seen:
            warnings.warn(
                f"open_runs: {file} repeats run {cell} of {seen[cell]}; using {file}",
                stacklevel=3,
            )
        seen[cell] = file
        for name, var in ds.data_vars.items():
            if name not in out:
                dims_of[name], attrs_of[name] = var.dims, dict(var.attrs)
                shape = tuple(sizes[d] for d in var.dims)
                out[name] = _empty(shape, var.dtype)
            elif out[name].dtype.kind == "U" and out[name].dtype.itemsize < var.dtype.itemsize:
                out[name] = out[name].astype(var.dtype)
            out[name][positions(ds, var.dims)] = var.transpose(*dims_of[name]).values

    coords: dict[str, Any] = {d: (d, np.array(index[d]), datasets[0][d].attrs) for d in index}
    labelled = _union(
        [n for n, c in ds.coords.items() if c.dims == ("projection",) and n != "projection"]
        for ds in datasets
    )  # source, target, op and any other label (source_population, ...); "" where a file lacks it
    for name in labelled:
        having = [ds for ds in datasets if name in ds.coords]
        labels = dict(
            pair
            for ds in having
            for pair in zip(ds["projection"].values, ds[name].values, strict=True)
        )
        values = np.array([labels.get(p, "") for p in index["projection"]], dtype=str)
        coords[name] = ("projection", values, having[0][name].attrs)
    epochs: dict[int, set[int]] = {}
    for ds in datasets:
        for step, epoch in zip(
            ds["step"].values.tolist(), ds["epoch"].values.tolist(), strict=True
        ):
            epochs.setdefault(step, set()).add(epoch)
    eattrs = datasets[0]["epoch"].attrs
    if all(len(e) == 1 for e in epochs.values()):
        coords["epoch"] = ("step", np.array([epochs[s].pop() for s in index["step"]]), eattrs)
    else:  # runs with different batch sizes: epoch per run and step
        epoch = np.full(tuple(sizes[d] for d in (*run_dims, "step")), np.nan)
        for ds in datasets:
            epoch[positions(ds, (*run_dims, "step"))] = ds["epoch"].values
        coords["epoch"] = ((*run_dims, "step"), epoch, eattrs)

    first = datasets[0].attrs
    attrs = {k: v for k, v in first.items() if all(_same(ds.attrs.get(k), v) for ds in datasets)}
    attrs.pop("status", None)  # per run: the ``status`` variable
    data = {n: (dims_of[n], out[n], attrs_of[n]) for n in out}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """NaN-filled (numbers, promoted to float) or ""-filled (strings) array."""
    if dtype.kind in "biuf":
        return np.full(shape, np.nan, np.result_type(dtype, np.float64))
    return np.full(shape, "", dtype)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and bool(np.all(a == b))
