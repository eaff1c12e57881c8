"""Population-level circuits through training and outputs: projections named by population with
``source_population``/``target_population`` coordinates, ``open_runs`` and the accessor, seeds
batched as one computation, clamped signs through ``fit``, what the spiking back-end refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import biofa
from biofa import Circuit, E, I, Train, compile, conv, dense
from biofa.data import PixelSet, register_dataset
from biofa.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")

register_dataset("digits_pixels", PixelSet("digits"), description="sklearn digits, in [0, 1]")
TRAIN = Train(data="digits_pixels", batch_size=32, max_steps=8, optimizer="sgd", lr=0.05,
              record_every=4, eval_every=8, device="cpu")  # fmt: skip


def cortex(rule: str = "feedback_alignment", constraint: str = "parametrize") -> Circuit:
    """v1 (pyr, pv local and linear) -> v2 (pyr, pv) -> out, with feedforward and divisive
    inhibition, on pixels in [0, 1] (the shunting conductance of linear interneurons driven by
    excitatory synapses stays positive only for non-negative inputs)."""
    c = Circuit("cortex", constraint=constraint)
    c.input("image", kind="E")
    c.area("v1", E(6, "pyr"), I(2, "pv", nonlinearity="identity", bias=False), pool="max")
    c.area("v2", E(8, "pyr"), I(3, "pv"))
    c.readout("out")
    c.connect("image", "v1.pyr", conv(3))
    c.connect("image", "v1.pv", conv(3))
    c.connect("v1.pv", "v1.pyr", conv(1), mode="subtractive+divisive")
    c.connect("v1.pyr", "v2", dense(flatten=True, p=0.5))
    c.connect("v2", "out", dense())
    c.feedback_everywhere(rule)
    return c


def test_outputs_name_projections_by_population(tmp_path):
    path = fit(cortex(), TRAIN, out=tmp_path / "run.nc")
    with xr.open_dataset(path) as ds:
        names = list(ds.projection.values)
        assert names == [
            "image->v1.pyr", "image->v1.pv", "v1.pv->v1.pyr", "v1.pyr->v2", "v2->out"
        ]  # fmt: skip
        assert list(ds.source.values) == ["image", "image", "v1", "v1", "v2"]
        assert list(ds.source_population.values) == ["*", "*", "pv", "pyr", "*"]
        assert list(ds.target_population.values) == ["pyr", "pv", "pyr", "*", "*"]
        assert ds.source_population.attrs["long_name"].startswith("source population")
        fa = ds.feedback_angle.isel(step=-1)
        # the input area receives no error; every other projection has a feedback angle
        assert np.isnan(fa.sel(projection="image->v1.pyr")).all()
        assert np.isfinite(fa.sel(projection=["v1.pv->v1.pyr", "v1.pyr->v2", "v2->out"])).all()
        err = ds.error_angle.isel(step=-1)
        assert np.isfinite(err.sel(projection=["v1.pv->v1.pyr", "v1.pyr->v2"])).all()


def test_open_runs_and_the_accessor_combine_population_runs(tmp_path):
    for seed in (0, 1):
        fit(cortex(), TRAIN.replace(seed=seed), out=tmp_path / f"seed-{seed}.nc",
            coords={"rule": "feedback_alignment", "seed": seed})  # fmt: skip
    ds = biofa.open_runs(tmp_path)
    assert ds.sizes["seed"] == 2
    assert "source_population" in ds.coords and ds.source_population.dims == ("projection",)
    summary = ds.biofa.summary("test_accuracy")
    assert int(summary["n"].squeeze()) == 2
    angle = ds.biofa.final("feedback_angle").sel(projection="v1.pv->v1.pyr")
    assert angle.sizes["seed"] == 2 and bool(np.isfinite(angle).all())


@pytest.mark.parametrize("rule", ["feedback_alignment", "kolen_pollack", "backprop"])
def test_batched_seeds_of_a_population_circuit_equal_separate_runs(tmp_path, rule):
    # (a small learning rate: the division amplifies the batched kernels' float rounding, which
    # separate runs would otherwise leave behind by 1e-4 after a few steps at lr 0.05)
    seeds, train = [0, 2], TRAIN.replace(lr=0.01)
    outs = [tmp_path / f"batched-{s}.nc" for s in seeds]
    fit(cortex(rule), train, out=outs, seeds=seeds)
    for seed, path in zip(seeds, outs, strict=True):
        ref = fit(cortex(rule), train.replace(seed=seed), out=tmp_path / f"ref-{seed}.nc")
        with xr.open_dataset(path) as got, xr.open_dataset(ref) as want:
            for name in want.data_vars:
                if name in ("wall_time", "run_config"):
                    continue
                np.testing.assert_allclose(got[name].values, want[name].values, rtol=2e-4,
                                           atol=2e-5, err_msg=f"{rule} {seed} {name}")  # fmt: skip


def test_clamped_signs_through_fit(tmp_path):
    models = []
    original = biofa.train.steppers.compile

    def keep(*args, **kwargs):
        models.append(original(*args, **kwargs))
        return models[-1]

    biofa.train.steppers.compile = keep
    try:
        fit(cortex(constraint="clamp"), TRAIN.replace(lr=0.5, momentum=0.0, max_steps=20),
            out=tmp_path / "clamp.nc")  # fmt: skip
    finally:
        biofa.train.steppers.compile = original
    (model,) = models
    raw = [g.parametrizations.weight.original for g in model.groups.values()]  # all signed
    assert all((r >= 0).all() for r in raw)
    assert any((r == 0).any() for r in raw), "some weights were clamped at 0 after a step"
    assert (model.groups["v1:pv__to__v1:pyr"].weight <= 0).all()


def test_spiking_refuses_what_it_cannot_translate_in_one_line():
    """Divisive inhibition, linear interneurons and convolutions have no spiking translation
    (population wiring itself has: tests/test_spiking_populations.py)."""
    spiking = pytest.importorskip("biofa.spiking")
    model = compile(cortex(), input_shape=(1, 8, 8), num_classes=3)
    with pytest.raises(ValueError) as info:
        spiking.check_supported(model)
    text = str(info.value)
    assert "\n" not in text
    assert "cannot be translated to spiking neurons" in text
    assert "projection 'v1.pv->v1.pyr' inhibits divisively" in text
    assert "population 'v1.pv' has nonlinearity 'identity'" in text
    assert "is conv" in text


def test_a_dann_spec_trains_from_the_command_line(tmp_path):
    """circuits/dann_mlp.py on the embedded digits (as pixels), all three models, a few steps."""
    root = Path(__file__).resolve().parents[1]
    from biofa.cli.main import main

    for model, lr in (("dann", 0.1107), ("mlp", 0.2976), ("column_ei", 0.05273)):
        code = main([str(root / "circuits" / "dann_mlp.py"), "--set", f"model={model}",
                     f"lr={lr}", "data=digits_pixels", "inputs=64", "width=20", "interneurons=4",
                     "max_steps=10", "record_every=5", "--out", str(tmp_path / model)])  # fmt: skip
        assert code == 0
        (path,) = (tmp_path / model).glob("*.nc")
        with xr.open_dataset(path) as ds:
            assert np.isfinite(ds.loss.values).any()
    with xr.open_dataset(next((tmp_path / "dann").glob("*.nc"))) as ds:
        assert "h1.i->h1.e" in ds.projection.values
    torch.set_num_threads(1)
