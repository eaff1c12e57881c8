"""The tables of docs/populations.md from the runs of ``circuits/dann_mlp.py`` (models x data
sets) and ``circuits/dann_rules.py`` (rules x models): final test accuracy, mean +- sd over seeds,
and for the rules the final feedback and error angles (degrees; mean over the projections that
have one, then mean +- sd over seeds).

    python analyses/dann_tables.py models runs/dann_mlp     # item: DANN vs MLP vs column E/I
    python analyses/dann_tables.py rules runs/dann_rules    # every rule x {Units, E/I, DANN}

Prints Markdown; ``--json PATH`` writes the numbers too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import xarray as xr

import biofa

NAMES = {"mlp": "MLP (Units)", "column_ei": "column E/I", "dann": "DANN"}


def _collapse(da: xr.DataArray, keep: tuple[str, ...]) -> xr.DataArray:
    """Drop every run dim but ``keep`` and ``seed`` by taking the one non-NaN value along it
    (a sweep that pairs each model with its own learning rate leaves NaN elsewhere)."""
    for dim in [d for d in da.dims if d not in (*keep, "seed")]:
        da = da.max(dim, skipna=True)
    return da


def _mean_sd(values: np.ndarray) -> tuple[float, float, int]:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"), len(v)


def _cell(m: float, s: float, n: int, scale: float = 1.0, digits: int = 2) -> str:
    if n == 0:
        return "—"
    sd = "" if np.isnan(s) else f" ± {scale * s:.{digits}f}"
    return f"{scale * m:.{digits}f}{sd}"


def models_table(ds: xr.Dataset) -> tuple[str, dict]:
    final = _collapse(ds.biofa.final("test_accuracy"), ("model", "data"))
    train = _collapse(ds.biofa.final("train_accuracy"), ("model", "data"))
    data_sets = [str(d) for d in final["data"].values]
    lines = ["| model | " + " | ".join(f"{d}: test accuracy % | train %" for d in data_sets) + " |",
             "|---|" + "---|---|" * len(data_sets)]  # fmt: skip
    numbers: dict = {}
    for model in [m for m in NAMES if m in final["model"].values]:
        cells = []
        for d in data_sets:
            test = final.sel(model=model, data=d).values.ravel()
            tr = train.sel(model=model, data=d).values.ravel()
            t, tt = _mean_sd(test), _mean_sd(tr)
            numbers[f"{model}/{d}"] = {"test": t, "train": tt}
            cells += [_cell(*t, scale=100) + f" (n={t[2]})", _cell(*tt, scale=100)]
        lines.append(f"| {NAMES[model]} | " + " | ".join(cells) + " |")
    return "\n".join(lines), numbers


def _angle(ds: xr.Dataset, var: str) -> xr.DataArray:
    """Final value per run, averaged over the projections that have one."""
    if var not in ds:
        return xr.full_like(ds.biofa.final("test_accuracy"), np.nan)
    return ds.biofa.final(var).mean("projection", skipna=True)


def rules_table(ds: xr.Dataset) -> tuple[str, dict]:
    acc = _collapse(ds.biofa.final("test_accuracy"), ("rule", "model"))
    fb = _collapse(_angle(ds, "feedback_angle"), ("rule", "model"))
    err = _collapse(_angle(ds, "error_angle"), ("rule", "model"))
    models = [m for m in NAMES if m in acc["model"].values]
    head = " | ".join(f"{NAMES[m]}: acc. % | feedback ° | error °" for m in models)
    lines = [f"| rule | {head} |", "|---|" + "---|---|---|" * len(models)]
    numbers: dict = {}
    for rule in acc["rule"].values:
        cells = []
        for m in models:
            a = _mean_sd(acc.sel(rule=rule, model=m).values.ravel())
            f = _mean_sd(fb.sel(rule=rule, model=m).values.ravel())
            e = _mean_sd(err.sel(rule=rule, model=m).values.ravel())
            numbers[f"{rule}/{m}"] = {"accuracy": a, "feedback_angle": f, "error_angle": e}
            cells += [_cell(*a, scale=100, digits=1), _cell(*f, digits=0), _cell(*e, digits=0)]
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines), numbers


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", choices=("models", "rules"))
    ap.add_argument("runs")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    ds = biofa.open_runs(args.runs)
    text, numbers = (models_table if args.table == "models" else rules_table)(ds)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(numbers, indent=1) + "\n")
    return numbers


if __name__ == "__main__":
    main()
