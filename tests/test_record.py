"""Recorder -> netCDF4 -> open_runs: schema, atomicity, sweeps, resilience, checkpoints."""

import json
import math
import os

import numpy as np
import pytest
import torch
import xarray as xr

from biofa.measure.metrics import METRICS
from biofa.measure.record import Recorder
from biofa.measure.runs import open_runs

PROJ = [("v1->v2", "v1", "v2", "conv2d"), ("v2->out", "v2", "out", "linear")]
CONFIG = {"rule": "fa", "seed": 0, "lr": 0.01, "hidden": [64, 32], "data": "digits"}


def make(rule="fa", seed=0, projections=PROJ, **extra):
    return Recorder(
        projections=projections,
        coords={"rule": rule, "seed": seed, **extra},
        run_config={**CONFIG, "rule": rule, "seed": seed},
        attrs={"title": "test run", "spec_source": "circuits/x.py", "amp": True, "n": 3},
    )


def fill(rec, steps=(0, 10, 20), offset=0.0):
    for i, step in enumerate(steps):
        rec.record(
            step,
            i // 2,
            {"loss": torch.tensor(2.0 - 0.1 * i + offset), "learning_rate": 0.01},
            {"feedback_angle": {"v1->v2": 80.0 - i, "v2->out": torch.tensor(70.0 - i)}},
        )
    return rec


def load(path):
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()


def test_round_trip_schema(tmp_path):
    rec = fill(make(lr=0.01))
    rec.record(20, 1, {"test_accuracy": 0.5})  # merged into step 20
    rec.record(10, 0, per_projection={"sign_concordance": {"v1->v2": 0.75}})
    path = rec.write(tmp_path / "run.nc")
    ds = load(path)

    assert dict(ds.sizes) == {"rule": 1, "seed": 1, "lr": 1, "step": 3, "projection": 2}
    assert ds["rule"].item() == "fa" and ds["seed"].item() == 0 and ds["lr"].item() == 0.01
    assert ds["step"].values.tolist() == [0, 10, 20]
    assert ds["epoch"].dims == ("step",) and ds["epoch"].values.tolist() == [0, 0, 1]
    assert ds["projection"].values.tolist() == ["v1->v2", "v2->out"]
    assert ds["source"].values.tolist() == ["v1", "v2"]
    assert ds["target"].values.tolist() == ["v2", "out"]
    assert ds["op"].values.tolist() == ["conv2d", "linear"]
    assert set(ds.coords) == {"rule", "seed", "lr", "step", "epoch", "projection"} | {
        "source",
        "target",
        "op",
    }
    # only recorded metrics, with the schema's dims and the registry's attrs
    metric_vars = {"loss", "learning_rate", "test_accuracy", "feedback_angle", "sign_concordance"}
    assert set(ds.data_vars) == metric_vars | {"run_config"}
    for name in metric_vars:
        var = ds[name]
        per_projection = METRICS[name].per == "projection"
        extra = ("projection",) if per_projection else ()
        assert var.dims == ("rule", "seed", "lr", "step", *extra)
        assert var.dtype == np.float64
        assert var.attrs["long_name"] == METRICS[name].long_name
        assert var.attrs["units"] == METRICS[name].units
    for name in ds.variables:  # every coordinate too (the CF compliance checker asks)
        assert ds[name].attrs.get("long_name"), name
    np.testing.assert_allclose(ds["loss"].values.ravel(), [2.0, 1.9, 1.8])
    np.testing.assert_array_equal(ds["test_accuracy"].values.ravel(), [np.nan, np.nan, 0.5])
    fa = ds["feedback_angle"].sel(rule="fa", seed=0, lr=0.01)
    np.testing.assert_allclose(fa.values, [[80, 70], [79, 69], [78, 68]])
    sc = ds["sign_concordance"].squeeze().values
    np.testing.assert_array_equal(sc, [[np.nan, np.nan], [0.75, np.nan], [np.nan, np.nan]])

    assert ds["run_config"].dims == ("rule", "seed", "lr")
    assert json.loads(ds["run_config"].item()) == {**CONFIG, "rule": "fa", "seed": 0}

    attrs = ds.attrs
    for key in ("Conventions", "title", "source", "biofa_version", "created", "status"):
        assert key in attrs, key
    assert attrs["Conventions"] == "CF-1.8" and attrs["status"] == "complete"
    assert attrs["title"] == "test run" and attrs["spec_source"] == "circuits/x.py"
    assert attrs["amp"] == 1 and attrs["created"].endswith("+00:00")
    for value in attrs.values():
        assert isinstance(value, str | int | float | np.number) and not isinstance(value, bool)


def test_compressed_and_string_types(tmp_path):
    import netCDF4

    path = fill(make()).write(tmp_path / "run.nc")
    with netCDF4.Dataset(path) as nc:
        assert nc.data_model == "NETCDF4"
        assert nc["loss"].filters()["zlib"] and nc["loss"].filters()["complevel"] == 4
        for name in ("rule", "projection", "source", "run_config"):
            assert nc[name].dtype is str, name  # variable-length netCDF strings


def test_steps_sorted_and_status(tmp_path):
    rec = make()
    rec.record(20, 1, {"loss": 1.0})
    rec.record(5, 0, {"loss": 2.0})
    ds = rec.to_dataset(status="diverged: loss is nan")
    assert ds["step"].values.tolist() == [5, 20] and ds["epoch"].values.tolist() == [0, 1]
    assert ds["loss"].values.ravel().tolist() == [2.0, 1.0]
    assert ds.attrs["status"] == "diverged: loss is nan"


def test_atomic_write_replaces(tmp_path):
    path = tmp_path / "sub" / "run.nc"
    rec = fill(make())
    rec.write(path, status="running")
    assert load(path).attrs["status"] == "running"
    rec.record(30, 1, {"loss": 0.1})
    assert rec.write(path) == path
    ds = load(path)
    assert ds.attrs["status"] == "complete" and ds.sizes["step"] == 4
    assert os.listdir(path.parent) == ["run.nc"]  # no temporary file left behind


def test_failed_write_leaves_old_file(tmp_path, monkeypatch):
    path = fill(make()).write(tmp_path / "run.nc")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        fill(make(), offset=1.0).write(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["run.nc"]


def test_zero_projections(tmp_path):
    rec = make(projections=[])
    rec.record(0, 0, {"loss": 1.0}, {"feedback_angle": {}})
    ds = load(rec.write(tmp_path / "run.nc"))
    assert ds.sizes["projection"] == 0 and ds["loss"].item() == 1.0
    assert ds["feedback_angle"].shape == (1, 1, 1, 0)
    assert open_runs(tmp_path).sizes["projection"] == 0


def test_sweep_2x2(tmp_path):
    for rule in ("bp", "fa"):
        for seed in (0, 1):
            rec = fill(make(rule, seed), offset=10 * (rule == "fa") + seed)
            rec.write(tmp_path / rule / f"seed{seed}.nc")
    ds = open_runs(tmp_path)
    assert dict(ds.sizes) == {"rule": 2, "seed": 2, "step": 3, "projection": 2}
    assert ds["rule"].values.tolist() == ["bp", "fa"] and ds["seed"].values.tolist() == [0, 1]
    assert ds["loss"].dims == ("rule", "seed", "step")
    assert ds["feedback_angle"].dims == ("rule", "seed", "step", "projection")
    for rule in ("bp", "fa"):
        for seed in (0, 1):
            offset = 10 * (rule == "fa") + seed
            loss = ds["loss"].sel(rule=rule, seed=seed).values
            np.testing.assert_allclose(loss, np.array([2.0, 1.9, 1.8]) + offset)
            config = json.loads(ds["run_config"].sel(rule=rule, seed=seed).item())
            assert config["rule"] == rule and config["seed"] == seed
    assert (ds["status"] == "complete").all()
    assert ds["epoch"].dims == ("step",) and ds["source"].values.tolist() == ["v1", "v2"]
    assert ds.attrs["title"] == "test run" and ds.attrs["Conventions"] == "CF-1.8"
    # a list of files works too
    files = sorted(tmp_path.rglob("*.nc"))
    assert open_runs(files[:2]).sizes["seed"] == 2
    assert open_runs(files[0]).sizes["seed"] == 1


def test_swept_bool_and_float_keys(tmp_path):
    for i, (augment, lr) in enumerate([(False, 0.1), (True, 0.1), (False, 0.01), (True, 0.01)]):
        fill(make("fa", 0, augment=augment, lr=lr), offset=i).write(tmp_path / f"{i}.nc")
    ds = open_runs(tmp_path)
    assert dict(ds.sizes) == {
        "rule": 1,
        "seed": 1,
        "augment": 2,
        "lr": 2,
        "step": 3,
        "projection": 2,
    }
    assert ds["augment"].dtype == bool and ds["lr"].values.tolist() == [0.01, 0.1]
    assert ds["loss"].sel(augment=True, lr=0.01, step=0).item() == 2.0 + 3


def test_different_step_grids(tmp_path):
    fill(make("fa", 0), steps=(0, 10, 20)).write(tmp_path / "a.nc")
    fill(make("fa", 1), steps=(0, 5, 10, 15)).write(tmp_path / "b.nc")
    ds = open_runs(tmp_path)
    assert ds["step"].values.tolist() == [0, 5, 10, 15, 20]
    assert ds["run_config"].dims == ("rule", "seed")
    a = ds["loss"].sel(rule="fa", seed=0).values
    np.testing.assert_allclose(a, [2.0, np.nan, 1.9, np.nan, 1.8])
    b = ds["loss"].sel(rule="fa", seed=1).values
    np.testing.assert_allclose(b, [2.0, 1.9, 1.8, 1.7, np.nan])
    # step 10 is epoch 0 in run a and epoch 1 in run b: epoch becomes per run
    assert ds["epoch"].dims == ("rule", "seed", "step")
    assert ds["epoch"].sel(seed=1).values.ravel()[2] == 1


def test_bad_files_are_skipped_with_warning(tmp_path):
    for seed in (0, 1):
        fill(make("fa", seed)).write(tmp_path / f"ok{seed}.nc")
    running = fill(make("fa", 2)).write(tmp_path / "running.nc", status="running")
    good = fill(make("bp", 0)).write(tmp_path / "x.nc")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good.read_bytes()[:300])
    diverged = fill(make("bp", 1)).write(tmp_path / "div.nc", status="diverged: loss is nan")
    with pytest.warns(UserWarning) as caught:
        ds = open_runs(tmp_path)
    messages = [str(w.message) for w in caught]
    assert any(str(running) in m and "running" in m for m in messages)
    assert any(str(truncated) in m for m in messages)
    assert len(messages) == 2
    # the diverged run is kept, with its status
    assert ds["seed"].values.tolist() == [0, 1]
    status = ds["status"].sel(rule="bp", seed=1).item()
    assert status == "diverged: loss is nan" and str(diverged).endswith("div.nc")
    with pytest.warns(UserWarning) as caught:
        only_complete = open_runs(tmp_path, include_status=("complete",))
    assert len(caught) == 3 and any("div.nc" in str(w.message) for w in caught)
    assert (only_complete["status"].values != "diverged: loss is nan").all()


def test_incomplete_sweep_grid(tmp_path):
    fill(make("bp", 0)).write(tmp_path / "a.nc")
    fill(make("fa", 1)).write(tmp_path / "b.nc")
    ds = open_runs(tmp_path)
    assert dict(ds.sizes) == {"rule": 2, "seed": 2, "step": 3, "projection": 2}
    assert np.isnan(ds["loss"].sel(rule="bp", seed=1)).all()
    assert ds["status"].sel(rule="bp", seed=1).item() == ""
    assert ds["run_config"].sel(rule="fa", seed=1).item().startswith("{")


def test_no_usable_files(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        open_runs(tmp_path)
    fill(make()).write(tmp_path / "r.nc", status="running")
    with pytest.warns(UserWarning, match="running"), pytest.raises(ValueError, match="no usable"):
        open_runs(tmp_path)


def test_state_dict_resume_is_identical(tmp_path):
    full = fill(make(), steps=(0, 10, 20, 30))
    first = fill(make(), steps=(0, 10))
    state = first.state_dict()
    path = tmp_path / "state.pt"
    torch.save(state, path)
    resumed = make()
    resumed.load_state_dict(torch.load(path, weights_only=True))
    for i, step in ((2, 20), (3, 30)):
        resumed.record(
            step,
            i // 2,
            {"loss": torch.tensor(2.0 - 0.1 * i), "learning_rate": 0.01},
            {"feedback_angle": {"v1->v2": 80.0 - i, "v2->out": torch.tensor(70.0 - i)}},
        )
    a, b = full.to_dataset(), resumed.to_dataset()
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert resumed.state_dict() == full.state_dict()
    with pytest.raises(ValueError, match="projections"):
        make(projections=PROJ[:1]).load_state_dict(state)


def test_record_errors():
    rec = make()
    with pytest.raises(ValueError, match="unknown metric 'lost'.*loss"):
        rec.record(0, 0, {"lost": 1.0})
    with pytest.raises(ValueError, match="per_projection"):
        rec.record(0, 0, {"feedback_angle": 1.0})
    with pytest.raises(ValueError, match="unknown projections"):
        rec.record(0, 0, per_projection={"feedback_angle": {"v9->v1": 1.0}})
    with pytest.raises(ValueError, match="scalars"):
        rec.record(0, 0, {"loss": torch.ones(2)})
    rec.record(0, 0, {"loss": 1.0})
    with pytest.raises(ValueError, match="epoch"):
        rec.record(0, 1, {"loss": 1.0})


def test_tensor_values_accepted():
    rec = make()
    rec.record(
        1,
        0,
        {"loss": torch.tensor(0.5, dtype=torch.float16), "wall_time": torch.tensor([3.0])},
        {"weight_norm": {"v1->v2": torch.tensor(2, dtype=torch.int64)}},
    )
    ds = rec.to_dataset()
    assert ds["loss"].item() == 0.5 and ds["wall_time"].item() == 3.0
    assert ds["weight_norm"].sel(projection="v1->v2").item() == 2.0
    assert math.isnan(ds["weight_norm"].sel(projection="v2->out").item())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attrs": {"bad": None}}, "'bad'"),
        ({"attrs": {"bad": {"a": 1}}}, "'bad'"),
        ({"coords": {"rule": "fa"}}, "seed"),
        ({"coords": {"rule": "fa", "seed": 0, "step": 1}}, "reserved"),
        ({"coords": {"rule": "fa", "seed": None}}, "seed"),
        ({"projections": [PROJ[0], PROJ[0]]}, "duplicate"),
    ],
)
def test_constructor_validation(kwargs, match):
    args = {
        "projections": PROJ,
        "coords": {"rule": "fa", "seed": 0},
        "run_config": {},
        "attrs": {},
        **kwargs,
    }
    with pytest.raises(ValueError, match=match):
        Recorder(**args)
