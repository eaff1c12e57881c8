"""The tables of docs/populations.md from the runs of ``circuits/dann_mlp.py`` (models x data
sets) and ``circuits/dann_rules.py`` (rules x models): final test accuracy, mean +- sd over seeds,
and for the rules the final feedback and error angles (degrees; mean over the projections that
have one, then mean +- sd over seeds).

    python analyses/dann_tables.py models runs/dann_mlp     # item: DANN vs MLP vs column E/I
    python analyses/dann_tables.py rules runs/dann_rules    # every rule x {Units, E/I, DANN}

The rules table chooses each rule x model's learning rate on the validation split
(:func:`_chosen_lr`) and reports the test accuracy of that rate's runs.

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


def _chosen_lr(ds: xr.Dataset, rule: str, model: str) -> float | None:
    """The learning rate with the best mean final validation accuracy over seeds (a diverged
    seed counts as chance), among those ``rule`` x ``model`` ran at; the test set plays no part."""
    status = ds["status"].sel(rule=rule, model=model)
    val = ds.biofa.final("validation_accuracy").sel(rule=rule, model=model)
    chance = 1.0 / ds.attrs.get("num_classes", 10)
    best, best_lr = -1.0, None
    for lr in ds["lr"].values:
        ran = (status.sel(lr=lr) != "").values.ravel()
        if not ran.any():
            continue
        score = float(np.nanmean(np.where(ran, val.sel(lr=lr).fillna(chance).values.ravel(),
                                          np.nan)))  # fmt: skip
        if score > best:
            best, best_lr = score, float(lr)
    return best_lr


def rules_table(ds: xr.Dataset) -> tuple[str, dict]:
    """Per rule x model at the learning rate chosen on the validation split (:func:`_chosen_lr`):
    test accuracy (mean +- sd over the seeds that did not diverge), that rate, the feedback and
    error angles. A swept ``sign_norm`` adds the rows ``"rule, norm=..."`` of the rules that ran
    with it."""
    if "sign_norm" not in ds.dims:
        return _rules_rows(ds, "")
    lines, numbers = [], {}
    for norm in sorted(ds["sign_norm"].values, key=lambda n: (n != "none", n)):  # "none" first
        part = ds.sel(sign_norm=norm)
        ran = [r for r in part["rule"].values if (part["status"].sel(rule=r) != "").any()]
        text, more = _rules_rows(part.sel(rule=ran), "" if norm == "none" else f", norm={norm}")
        lines += text.splitlines() if not lines else text.splitlines()[2:]
        numbers.update(more)
    return "\n".join(lines), numbers


def _rules_rows(ds: xr.Dataset, label: str) -> tuple[str, dict]:
    acc = ds.biofa.final("test_accuracy")
    fb, err = _angle(ds, "feedback_angle"), _angle(ds, "error_angle")
    models = [m for m in NAMES if m in acc["model"].values]
    head = " | ".join(f"{NAMES[m]}: acc. % | lr | fb. ° | err. °" for m in models)
    lines = [f"| rule | {head} |", "|---|" + "---|---|---|---|" * len(models)]
    numbers: dict = {}
    for rule in acc["rule"].values:
        cells = []
        for m in models:
            lr = _chosen_lr(ds, str(rule), m)
            if lr is None:
                cells += ["not run", "", "", ""]
                continue
            at = dict(rule=rule, model=m, lr=lr)
            a = _mean_sd(acc.sel(**at).values.ravel())
            f, e = _mean_sd(fb.sel(**at).values.ravel()), _mean_sd(err.sel(**at).values.ravel())
            ran = int((ds["status"].sel(**at) != "").sum())
            numbers[f"{rule}{label}/{m}"] = {"lr": lr, "accuracy": a, "feedback_angle": f,
                                            "error_angle": e, "runs": ran}  # fmt: skip
            lost = f" ({ran - a[2]}/{ran} div.)" if a[2] < ran else ""
            cells += [_cell(*a, scale=100, digits=1) + lost, f"{lr:.3g}",
                      _cell(*f, digits=0), _cell(*e, digits=0)]  # fmt: skip
        lines.append(f"| {rule}{label} | " + " | ".join(cells) + " |")
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
