"""What a run file says about itself: per-projection labels, CF attributes and types, file modes."""

from __future__ import annotations

import os
import stat
import sys

import netCDF4
import numpy as np
import pytest
import xarray as xr

from biofa.measure.netcdf import write_netcdf
from biofa.measure.record import Recorder

LABELLED = [
    {"projection": "v1->v2", "source": "v1", "target": "v2", "op": "conv2d",
     "feedback_rule": "feedback_alignment", "source_population": "v1.pyr"},
    {"projection": "v2->out", "source": "v2", "target": "out", "op": "linear",
     "feedback_rule": "backprop", "source_population": "v2.pyr"},
]  # fmt: skip


def recorder(projections=LABELLED, **kwargs) -> Recorder:
    rec = Recorder(
        projections=projections,
        coords={"rule": "feedback_alignment", "seed": 3, "width": 8},
        run_config={},
        attrs={"command": "python -m biofa.run circuits/x.py --set width=8"},
        **kwargs,
    )
    rec.record(10, 0, {"loss": 1.0}, {"feedback_angle": {"v1->v2": 80.0}})
    rec.record(20, 1, {"loss": 0.5}, {"feedback_angle": {"v1->v2": 70.0}})
    return rec


def load(path):
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()


def test_every_label_of_a_projection_becomes_a_coordinate_on_projection(tmp_path):
    ds = load(recorder().write(tmp_path / "run.nc"))
    assert ds["feedback_rule"].dims == ("projection",)
    assert ds["feedback_rule"].values.tolist() == ["feedback_alignment", "backprop"]
    assert ds["source_population"].values.tolist() == ["v1.pyr", "v2.pyr"]
    assert ds["source"].values.tolist() == ["v1", "v2"] and ds["op"].values.tolist()[1] == "linear"
    assert ds["source_population"].attrs["long_name"] == "source population"  # from the name
    assert ds["feedback_rule"].attrs["long_name"] == "feedback rule"
    sel = ds.feedback_angle.where(ds.feedback_rule == "feedback_alignment", drop=True)
    assert sel.projection.values.tolist() == ["v1->v2"]


def test_label_long_names_can_be_given(tmp_path):
    names = {"source_population": "population the projection leaves"}
    ds = recorder(label_long_names=names).to_dataset()
    assert ds["source_population"].attrs["long_name"] == "population the projection leaves"


def test_tuples_still_stand_for_the_four_required_labels():
    ds = recorder(
        [("v1->v2", "v1", "v2", "linear"), ("v2->out", "v2", "out", "linear")]
    ).to_dataset()
    assert set(ds["projection"].coords) == {"projection", "source", "target", "op"}
    assert ds["target"].values.tolist() == ["v2", "out"]


@pytest.mark.parametrize(
    ("projections", "match"),
    [
        ([{"projection": "a->b", "source": "a", "target": "b"}], r"'a->b' has no labels \['op'\]"),
        ([LABELLED[0], {k: v for k, v in LABELLED[1].items() if k != "feedback_rule"}],
         r"'v2->out' has no labels \['feedback_rule'\]"),
        ([("a->b", "a")], "mapping of labels"),
        ([{**LABELLED[0], "loss": "x"}], "metric names"),
    ],
)  # fmt: skip
def test_bad_labels_are_refused_naming_the_projection(projections, match):
    with pytest.raises(ValueError, match=match):
        Recorder(projections=projections, coords={"rule": "x", "seed": 0}, run_config={}, attrs={})


def test_a_label_cannot_share_a_run_coordinate_name():
    with pytest.raises(ValueError, match="'feedback_rule' is reserved"):
        Recorder(
            projections=LABELLED,
            coords={"rule": "x", "seed": 0, "feedback_rule": "y"},
            run_config={},
            attrs={},
        )


def test_every_coordinate_has_a_long_name_and_the_file_a_history(tmp_path, monkeypatch):
    ds = load(recorder().write(tmp_path / "run.nc"))
    for name in ds.coords:
        assert ds[name].attrs.get("long_name"), name
    assert ds["seed"].attrs["long_name"] == "random seed of the run"
    assert ds["width"].attrs["long_name"] == "swept key width"
    assert ds["step"].attrs["units"] == "1"
    created = ds.attrs["created"]
    assert ds.attrs["history"] == (
        f"{created}: biofa {ds.attrs['biofa_version']}: "
        "python -m biofa.run circuits/x.py --set width=8"
    )
    # without a command attribute: this process's command line
    monkeypatch.setattr(sys, "argv", ["train.py", "--fast"])
    rec = Recorder(projections=[], coords={"rule": "x", "seed": 0}, run_config={}, attrs={})
    assert rec.to_dataset().attrs["history"].endswith(": train.py --fast")


def test_integer_coordinates_are_int32_in_the_file_where_they_fit(tmp_path):
    rec = recorder()
    assert rec.to_dataset()["step"].dtype == np.int64  # in memory: numpy's default
    path = rec.write(tmp_path / "run.nc")
    with netCDF4.Dataset(path) as nc:
        for name in ("step", "epoch", "seed", "width"):
            assert nc[name].dtype == np.int32, name
    ds = load(path)
    assert ds["step"].values.tolist() == [10, 20] and ds["epoch"].values.tolist() == [0, 1]
    big = xr.Dataset(coords={"x": [0, 2**40]})  # does not fit: stays int64
    with netCDF4.Dataset(write_netcdf(big, tmp_path / "big.nc")) as nc:
        assert nc["x"].dtype == np.int64


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_are_written_with_the_umask_like_any_other_file(tmp_path, umask):
    before = os.umask(umask)
    try:
        run = recorder().write(tmp_path / "run.nc")
        other = tmp_path / "other.txt"
        other.write_text("x")
        validation = write_netcdf(xr.Dataset({"a": ("x", [1.0])}), tmp_path / "spiking.nc")
    finally:
        os.umask(before)
    expected = 0o666 & ~umask
    assert stat.S_IMODE(other.stat().st_mode) == expected
    assert stat.S_IMODE(run.stat().st_mode) == expected
    assert stat.S_IMODE(validation.stat().st_mode) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt", "run.nc", "spiking.nc"]


def test_spiking_validation_files_get_a_history_too(tmp_path, monkeypatch):
    from biofa.spiking import dataset

    monkeypatch.setattr(sys, "argv", ["validate.py", "--images", "10"])
    ds = xr.Dataset({"a": ("x", [1.0])}, attrs={"created": "2026-12-01T00:00:00+00:00"})
    written = load(dataset.write(ds, tmp_path / "spiking.nc"))
    assert written.attrs["history"].startswith("2026-12-01T00:00:00+00:00: biofa ")
    assert written.attrs["history"].endswith(": validate.py --images 10")
    assert "history" not in ds.attrs  # the caller's Dataset is left as it was


def test_open_mfdataset_needs_dask_and_the_docs_say_how_to_get_it(tmp_path):
    import importlib.util
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pyproject = (root / "pyproject.toml").read_text()
    assert re.search(r'^dask = \["dask\[array\]>=[\d.]+"\]', pyproject, re.M)
    docs = (root / "docs" / "output-format.md").read_text()
    assert "pip install 'biofa[dask]'" in docs and "chunk manager" in docs
    recorder().write(tmp_path / "a.nc")
    if importlib.util.find_spec("dask") is None:  # what the page says happens without it
        with pytest.raises(ImportError, match="dask"):
            xr.open_mfdataset(str(tmp_path / "*.nc"))
    else:
        with xr.open_mfdataset(str(tmp_path / "*.nc")) as ds:
            assert ds.sizes["step"] == 2
