"""``ds.biofa``: the few reductions every comparison of rules needs, over plain xarray.

Registered on :class:`xarray.Dataset` when :mod:`biofa` is imported. Every method takes a variable
name (or a :class:`~xarray.DataArray`) of a Dataset from :func:`biofa.open_runs` and returns plain
xarray objects with the run's remaining dims (``rule``, every swept key, ``projection``), so
anything further is ordinary xarray::

    ds = biofa.open_runs("runs/ei_cnn")
    ds.biofa.summary("test_accuracy").to_dataframe()       # final accuracy: mean, sd, n per rule
    ds.biofa.curve("feedback_angle").mean.sel(projection="v1->v2").plot.line(x="step", hue="rule")
    ds.biofa.steps_to(0.9).mean("seed")                    # steps to 90 % test accuracy

Variables are recorded at different steps (``test_accuracy`` at evaluations, the others every
``record_every`` steps), so a combined Dataset holds NaN where a variable was not recorded; the
methods skip those. Spreads are sample standard deviations over seeds (``ddof=1``: NaN for one
seed).
"""

from __future__ import annotations

import xarray as xr

__all__ = ["BiofaAccessor"]


@xr.register_dataset_accessor("biofa")
class BiofaAccessor:
    """Reductions of a runs Dataset (module docstring); ``ds.biofa.<method>``."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def _var(self, var: str | xr.DataArray) -> xr.DataArray:
        if isinstance(var, xr.DataArray):
            return var
        if var not in self._ds.data_vars:
            names = ", ".join(sorted(map(str, self._ds.data_vars)))
            raise ValueError(f"no variable {var!r} in this Dataset; it has: {names}")
        return self._ds[var]

    def final(self, var: str | xr.DataArray = "test_accuracy") -> xr.DataArray:
        """The last recorded (non-NaN) value of ``var`` in every run: dims without ``step``."""
        da = self._var(var)
        last = da.notnull().cumsum("step").argmax("step")  # first max = last recorded step
        return da.isel(step=last).drop_vars(["step", "epoch"], errors="ignore")

    def mean_sd(self, da: xr.DataArray, dim: str = "seed") -> xr.Dataset:
        """``mean``, ``sd`` (``ddof=1``) and ``n`` (non-NaN count) of ``da`` over ``dim``."""
        out = xr.Dataset(
            {
                "mean": da.mean(dim),
                "sd": da.std(dim, ddof=1),
                "n": da.count(dim),
            }
        )
        for name in ("mean", "sd"):
            out[name].attrs = dict(da.attrs)
        out["n"].attrs = {"long_name": f"number of {dim}s", "units": "1"}
        return out

    def summary(self, var: str | xr.DataArray = "test_accuracy", dim: str = "seed") -> xr.Dataset:
        """Final value of ``var`` per rule (and swept key): ``mean``, ``sd``, ``n`` over seeds."""
        return self.mean_sd(self.final(var), dim)

    def curve(self, var: str | xr.DataArray = "feedback_angle", dim: str = "seed") -> xr.Dataset:
        """``var`` against ``step``: ``mean``, ``sd``, ``n`` over seeds, at the steps it was
        recorded (steps where no run recorded it are dropped)."""
        da = self._var(var)
        return self.mean_sd(da.dropna("step", how="all"), dim)

    def steps_to(self, threshold: float, var: str | xr.DataArray = "test_accuracy") -> xr.DataArray:
        """The first recorded step at which ``var >= threshold`` in every run (NaN: never)."""
        da = self._var(var)
        reached = da >= threshold
        first = da["step"].where(reached).min("step")  # NaN where never reached
        first.attrs = {"long_name": f"first step with {da.name} >= {threshold:g}", "units": "1"}
        return first.rename(f"steps_to_{da.name}")
