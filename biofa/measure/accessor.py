"""``ds.biofa``: the few reductions every comparison of rules needs, over plain xarray.

Registered on :class:`xarray.Dataset` when :mod:`biofa` is imported. Every method takes a variable
name (or a :class:`~xarray.DataArray`) of a Dataset from :func:`biofa.open_runs` and returns plain
xarray objects with the run's remaining dims (``rule``, every swept key, ``projection``), so
anything further is ordinary xarray. The spreads come back as variables ``mean_value``,
``sd_value`` and ``n`` (not ``mean``/``sd``: ``.mean`` of a Dataset is its method).

Variables are recorded at different steps (``test_accuracy`` at evaluations, the others every
``record_every`` steps), so a combined Dataset holds NaN where a variable was not recorded; the
methods skip those. Spreads are sample standard deviations over seeds (``ddof=1``: NaN for one
seed).

Examples
--------
Two rules, two seeds, test accuracy evaluated at steps 10 and 20 (one run stopped early):

>>> import numpy as np, xarray as xr
>>> import biofa
>>> acc = [[[0.5, 0.8], [0.6, 0.9]], [[0.3, 0.6], [0.2, np.nan]]]
>>> ds = xr.Dataset(
...     {"test_accuracy": (("rule", "seed", "step"), acc, {"units": "1"})},
...     coords={"rule": ["backprop", "feedback_alignment"], "seed": [0, 1], "step": [10, 20]},
... )
>>> ds.biofa.final("test_accuracy").values.tolist()  # the last recorded value of each run
[[0.8, 0.9], [0.6, 0.2]]
>>> table = ds.biofa.summary("test_accuracy").to_dataframe()
>>> table.round(3)  # over seeds, per rule  # doctest: +NORMALIZE_WHITESPACE
                    mean_value  sd_value  n
rule
backprop                  0.85     0.071  2
feedback_alignment        0.40     0.283  2
>>> curve = ds.biofa.curve("test_accuracy")
>>> curve.mean_value.sel(rule="backprop").round(3).values.tolist()
[0.55, 0.85]
>>> curve.n.sel(step=20).values.tolist()  # the run that stopped early is not counted
[2, 1]
>>> ds.biofa.steps_to(0.6).values.tolist()  # first step at >= 0.6; NaN: never
[[20.0, 10.0], [20.0, nan]]

With a runs folder: ``biofa.open_runs("runs/ei_cnn").biofa.curve("feedback_angle")``, then
``.mean_value.sel(projection="v1->v2").plot.line(x="step", hue="rule")``.
"""

from __future__ import annotations

import xarray as xr

__all__ = ["BiofaAccessor", "RESULT_NAMES"]

#: The variables of :meth:`BiofaAccessor.mean_sd`'s Dataset (and ``summary``'s, ``curve``'s).
RESULT_NAMES = ("mean_value", "sd_value", "n")


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
        """``mean_value``, ``sd_value`` (``ddof=1``) and ``n`` (non-NaN count) of ``da`` over
        ``dim``."""
        mean, sd, n = RESULT_NAMES
        out = xr.Dataset({mean: da.mean(dim), sd: da.std(dim, ddof=1), n: da.count(dim)})
        for name in (mean, sd):
            out[name].attrs = dict(da.attrs)
        out[n].attrs = {"long_name": f"number of {dim}s", "units": "1"}
        return out

    def summary(self, var: str | xr.DataArray = "test_accuracy", dim: str = "seed") -> xr.Dataset:
        """Final value of ``var`` per rule (and swept key): ``mean_value``, ``sd_value``, ``n``
        over seeds."""
        return self.mean_sd(self.final(var), dim)

    def curve(self, var: str | xr.DataArray = "feedback_angle", dim: str = "seed") -> xr.Dataset:
        """``var`` against ``step``: ``mean_value``, ``sd_value``, ``n`` over seeds, at the steps
        it was recorded (steps where no run recorded it are dropped)."""
        da = self._var(var)
        return self.mean_sd(da.dropna("step", how="all"), dim)

    def steps_to(self, threshold: float, var: str | xr.DataArray = "test_accuracy") -> xr.DataArray:
        """The first recorded step at which ``var >= threshold`` in every run (NaN: never)."""
        da = self._var(var)
        reached = da >= threshold
        first = da["step"].where(reached).min("step")  # NaN where never reached
        first.attrs = {"long_name": f"first step with {da.name} >= {threshold:g}", "units": "1"}
        return first.rename(f"steps_to_{da.name}")
