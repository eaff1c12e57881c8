"""open_runs beyond a plain sweep: runs that differ in their variables, projections and labels,
random incomplete grids against a cell-by-cell reference, and runs that should not be mixed."""

from __future__ import annotations

import itertools
import json
import random
import warnings

import numpy as np
import pytest
import xarray as xr

from biofa.measure.record import Recorder
from biofa.measure.runs import open_runs

CORE = [("v1->v2", "v1", "v2", "linear"), ("v2->out", "v2", "out", "linear")]


def labelled(rule: str, names=("v1->v2", "v2->out")) -> list[dict]:
    ends = {"v1->v2": ("v1", "v2"), "v2->out": ("v2", "out"), "v1->out": ("v1", "out")}
    return [
        {"projection": n, "source": ends[n][0], "target": ends[n][1], "op": "linear",
         "feedback_rule": "backprop" if n == "v2->out" else rule}
        for n in names
    ]  # fmt: skip


def write(path, rule="fa", seed=0, *, projections=None, steps=(0, 10, 20), circuit="c",
          data="digits", extra=None, value=0.0, coords=None):  # fmt: skip
    rec = Recorder(
        projections=projections if projections is not None else labelled(rule),
        coords={"rule": rule, "seed": seed, **(coords or {})},
        run_config={"circuit": circuit, "train": {"data": data}},
        attrs={"circuit": circuit, "data": data},
    )
    names = rec.labels["projection"]
    for i, step in enumerate(steps):
        per = {"feedback_angle": {n: value + 10 * j + i for j, n in enumerate(names)}}
        if extra:
            per[extra] = {names[0]: -1.0}
        rec.record(step, i // 2, {"loss": value + i}, per)
    return rec.write(path)


def test_runs_with_different_variables_and_no_common_cell_line_up(tmp_path):
    write(tmp_path / "a.nc", "fa", 0, value=1.0)
    write(tmp_path / "b.nc", "kp", 1, extra="feedback_update_norm", value=2.0)  # a learned B
    ds = open_runs(tmp_path)
    assert dict(ds.sizes) == {"rule": 2, "seed": 2, "step": 3, "projection": 2}
    fun = ds.feedback_update_norm
    assert fun.sel(rule="kp", seed=1, projection="v1->v2").values.tolist() == [-1.0] * 3
    assert fun.sel(rule="fa").isnull().all() and fun.sel(rule="kp", seed=0).isnull().all()
    assert ds.loss.sel(rule="fa", seed=0).values.tolist() == [1.0, 2.0, 3.0]
    assert ds.status.values.tolist() == [["complete", ""], ["", "complete"]]
    assert ds.run_config.dtype.kind == "U" and ds.run_config.sel(rule="fa", seed=1).item() == ""
    assert ds.rule.dtype.kind == "U" and ds.seed.dtype.kind == "i"
    assert list(ds.data_vars) == ["loss", "feedback_angle", "run_config", "status",
                                  "feedback_update_norm"]  # fmt: skip


def test_a_label_that_differs_between_runs_is_kept_per_run(tmp_path):
    for rule, seed in itertools.product(("fa", "kp"), (0, 1)):
        write(tmp_path / f"{rule}{seed}.nc", rule, seed)
    ds = open_runs(tmp_path)
    # a rule sweep: v1->v2's feedback rule is the run's; v2->out's is backprop in every run
    assert ds.feedback_rule.dims == ("rule", "seed", "projection")
    assert ds.feedback_rule.sel(projection="v1->v2").values.tolist() == [["fa", "fa"], ["kp"] * 2]
    assert (ds.feedback_rule.sel(projection="v2->out") == "backprop").all()
    assert ds.feedback_rule.attrs["long_name"] == "feedback rule"
    # labels every run agrees on stay on projection alone
    assert ds.source.dims == ("projection",) and ds.source.values.tolist() == ["v1", "v2"]
    assert ds.epoch.dims == ("step",) and ds.epoch.dtype.kind == "i"
    one_rule = open_runs(sorted(tmp_path.glob("fa*.nc")))
    assert one_rule.feedback_rule.dims == ("projection",)
    assert one_rule.feedback_rule.values.tolist() == ["fa", "backprop"]


def test_projections_missing_from_a_run_are_nan_and_keep_circuit_order(tmp_path):
    write(tmp_path / "a.nc", "fa", 0, projections=labelled("fa", ("v2->out", "v1->v2")))
    write(tmp_path / "b.nc", "fa", 1, projections=labelled("fa", ("v2->out", "v1->out")))
    ds = open_runs(tmp_path)
    assert ds.projection.values.tolist() == ["v2->out", "v1->v2", "v1->out"]  # first seen
    assert ds.target.values.tolist() == ["out", "v2", "out"]
    assert ds.feedback_rule.values.tolist() == ["backprop", "fa", "fa"]
    angle = ds.feedback_angle.isel(step=0).sel(rule="fa")
    np.testing.assert_array_equal(angle.values, [[0.0, 10.0, np.nan], [0.0, np.nan, 10.0]])


def test_files_without_the_newer_labels_combine_with_newer_ones(tmp_path):
    write(tmp_path / "old.nc", "fa", 0, projections=CORE)  # no feedback_rule: an older file
    write(tmp_path / "new.nc", "fa", 1)
    ds = open_runs(tmp_path)
    assert ds.feedback_rule.values.tolist() == ["fa", "backprop"]  # from the run that has it
    assert ds.sizes["seed"] == 2


@pytest.mark.parametrize("trial", range(4))
def test_random_incomplete_grids_match_a_cell_by_cell_reference(tmp_path, trial):
    rng = random.Random(trial)
    grid = list(itertools.product(["bp", "fa", "kp"], [0, 1, 2], [0.01, 0.1]))
    points = rng.sample(grid, rng.randint(2, len(grid) - 1))
    grids = [(0, 10, 20), (0, 5, 10, 15), (10, 20, 30)]
    runs = {}
    for i, point in enumerate(points):
        steps = rng.choice(grids)
        write(tmp_path / f"{i}.nc", point[0], point[1], steps=steps, value=100.0 * i,
              coords={"lr": point[2]})  # fmt: skip
        runs[point] = (steps, 100.0 * i)
    ds = open_runs(tmp_path)
    assert ds.loss.dims == ("rule", "seed", "lr", "step")
    for k, key in enumerate(("rule", "seed", "lr")):
        assert ds[key].values.tolist() == sorted({p[k] for p in points})
    all_steps = sorted({s for steps, _ in runs.values() for s in steps})
    assert ds.step.values.tolist() == all_steps
    for rule, seed, lr in itertools.product(ds.rule.values, ds.seed.values, ds.lr.values):
        loss = ds.loss.sel(rule=rule, seed=seed, lr=lr).values
        point = (str(rule), int(seed), float(lr))
        if point not in runs:
            assert np.isnan(loss).all() and ds.status.sel(rule=rule, seed=seed, lr=lr) == ""
            continue
        steps, value = runs[point]
        expected = [value + steps.index(s) if s in steps else np.nan for s in all_steps]
        np.testing.assert_array_equal(loss, expected)
        config = json.loads(ds.run_config.sel(rule=rule, seed=seed, lr=lr).item())
        assert config == {"circuit": "c", "train": {"data": "digits"}}


def test_runs_of_different_circuits_or_data_sets_are_refused_naming_the_files(tmp_path):
    a = write(tmp_path / "a.nc", "fa", 0, circuit="ei_cnn")
    b = write(tmp_path / "b.nc", "fa", 1, circuit="ei_cnn")
    c = write(tmp_path / "c.nc", "fa", 2, circuit="ei_mlp")
    with pytest.raises(ValueError) as caught:
        open_runs(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "different circuits or data sets" in message
    assert f"circuit 'ei_cnn' data 'digits': {a}, {b}" in message
    assert f"circuit 'ei_mlp' data 'digits': {c}" in message and "mixed='allow'" in message
    with pytest.warns(UserWarning, match="different circuits"):
        warned = open_runs(tmp_path, mixed="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        allowed = open_runs(tmp_path, mixed="allow")
    xr.testing.assert_identical(warned, allowed)
    assert allowed.sizes["seed"] == 3 and "circuit" not in allowed.attrs  # it differs
    d = write(tmp_path / "d.nc", "fa", 3, circuit="ei_cnn", data="mnist")
    with pytest.raises(ValueError, match=f"circuit 'ei_cnn' data 'mnist': {d}"):
        open_runs([a, d])


def test_a_swept_data_set_is_not_a_mix(tmp_path):
    for data in ("digits", "mnist"):  # --sweep over Train.data: 'data' is a run coordinate
        write(tmp_path / f"{data}.nc", "fa", 0, data=data, coords={"data": data})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = open_runs(tmp_path)
    assert ds.data.values.tolist() == ["digits", "mnist"] and ds.loss.dims[:3] == (
        "rule",
        "seed",
        "data",
    )


def test_paths_that_hold_no_runs_say_so(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"open_runs: .*nowhere: no such file"):
        open_runs(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"no run files \(\*\.nc\) in "):
        open_runs(tmp_path)
    with pytest.raises(ValueError, match="mixed='sometimes' must be one of 'raise', 'warn'"):
        open_runs(tmp_path, mixed="sometimes")
