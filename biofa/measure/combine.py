"""One Dataset from the Datasets of single runs: :func:`xarray.combine_by_coords`, with the
schema's per-run coordinates restored.

Every run file has length-1 dimensions for its run coordinates (``rule``, ``seed``, each swept
key), so xarray's own ``combine_by_coords(..., join="outer", combine_attrs="drop_conflicts")``
puts each run into its cell of the sweep: an incomplete sweep gets NaN cells, runs with other
variables (``feedback_update_norm`` only for learned feedback) line up, and global attributes that
differ between runs (``created``, ``history``) are dropped. What it does not do (checked with
xarray 2026.9), and is done around it here:

* ``step`` grids that differ between runs: ``combine_by_coords`` takes an index that differs
  between its inputs for a dimension to concatenate along, orders the runs by their first step
  and fails ("does not have monotonic global indexes along dimension step") when the grids
  interleave. So every run is first reindexed onto the union of the steps (and of the
  projections, for runs of circuits with other projections); ``combine_by_coords`` then only
  arranges the runs along the run dimensions;
* ``epoch`` (on ``step``) and the projection labels (``source``, ``target``, ``op``,
  ``feedback_rule``, any other coordinate on ``projection``) can differ between runs (a rule sweep
  has a different ``feedback_rule`` per run; runs with other batch sizes reach a step in another
  epoch). As coordinates, xarray requires them equal (``compat``) or keeps the first run's
  (``"override"``). They are combined as variables over the run dimensions instead, and become
  coordinates on ``step`` / ``projection`` again where every run agrees (per run, with dims
  ``(run dims, step)`` or ``(run dims, projection)``, where they do not);
* strings of missing cells come back as NaN objects: they become ``""`` and ``str`` again;
* order: dimensions ``(run dims, step, projection)``, run coordinates and ``step`` sorted,
  projections in the order of the first run that has them (circuit order), variables in the
  order the runs have them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["combine"]


def combine(datasets: Sequence[xr.Dataset]) -> xr.Dataset:
    """The single-run Datasets ``datasets`` (one cell each, same run dimensions) as one."""
    run_dims = tuple(datasets[0]["run_config"].dims)
    labels = list(
        dict.fromkeys(
            str(name)
            for ds in datasets
            for name, coord in ds.coords.items()
            if coord.dims == ("projection",) and name != "projection"
        )
    )
    per_run = ["epoch", *labels]
    step_type = np.result_type(*(ds["step"].dtype for ds in datasets))
    steps = np.array(sorted({s for ds in datasets for s in ds["step"].values.tolist()}), step_type)
    projections = list(dict.fromkeys(p for ds in datasets for p in ds["projection"].values))
    grid = {"step": steps, "projection": np.array(projections, dtype=str)}
    out = xr.combine_by_coords(
        [_as_variables(ds, run_dims, per_run).reindex(grid) for ds in datasets],
        data_vars="minimal",
        coords="minimal",
        compat="no_conflicts",
        join="outer",
        combine_attrs="drop_conflicts",
    )
    out = _strings(out).sortby(list(run_dims))
    epoch_dtype = datasets[0]["epoch"].dtype
    coords = {"epoch": _coordinate(out["epoch"], "step", epoch_dtype)}
    coords.update({n: _coordinate(out[n], "projection", np.dtype(str)) for n in labels})
    names = dict.fromkeys(n for ds in datasets for n in ds.data_vars if n not in per_run)
    order = (*run_dims, "step", "projection")
    result = xr.Dataset(coords={**{n: out[n] for n in order}, **coords}, attrs=out.attrs)
    return result.assign({n: out[n] for n in names}).transpose(*order)


def _as_variables(ds: xr.Dataset, run_dims: tuple[str, ...], names: list[str]) -> xr.Dataset:
    """``ds`` with the coordinates ``names`` as variables over the run dimensions too."""
    ds = ds.reset_coords([n for n in names if n in ds.coords])
    for name in names:
        if name in ds:
            ds[name] = ds[name].expand_dims({d: ds[d].values for d in run_dims})
    return ds


def _strings(ds: xr.Dataset) -> xr.Dataset:
    """Object arrays (strings with NaN where a cell is missing) as ``str``, ``""`` where missing;
    run coordinates that became objects get their own type back."""
    out = ds.copy()
    for name, var in ds.variables.items():
        if var.dtype != object:
            continue
        values = var.values
        present = [v for v in values.ravel() if not _missing(v)]
        if name in ds.dims:  # an index: never missing
            out = out.assign_coords({name: (name, np.array(values.tolist()), var.attrs)})
        elif all(isinstance(v, str) for v in present):
            filled = np.array(["" if _missing(v) else v for v in values.ravel()], dtype=str)
            out[name] = var.copy(data=filled.reshape(values.shape))
    return out


def _missing(value: object) -> bool:
    return not isinstance(value, str) and bool(pd.isna(value))


def _coordinate(da: xr.DataArray, along: str, dtype: np.dtype) -> xr.DataArray:
    """``da`` (run dims, ``along``) as a coordinate on ``along`` alone where every run that has a
    value agrees, else as it is (per run)."""
    run_dims = [d for d in da.dims if d != along]
    if da.sizes[along] == 0:
        return xr.DataArray(np.array([], dtype=dtype), dims=(along,), attrs=da.attrs)
    table = da.transpose(*run_dims, along).values.reshape(-1, da.sizes[along])
    missing = (table == "") if table.dtype.kind == "U" else np.isnan(table)
    values = []
    for column, absent in zip(table.T, missing.T, strict=True):
        distinct = set(column[~absent].tolist())
        if len(distinct) > 1:
            return da.transpose(*run_dims, along)
        values.append(distinct.pop() if distinct else "")
    return xr.DataArray(np.array(values).astype(dtype), dims=(along,), attrs=da.attrs)
