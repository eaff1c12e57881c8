"""Learned feedback rules in short training runs on the embedded digits (fit -> netCDF)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

from biofa import Circuit, E, I, Train, Units, conv, dense
from biofa.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")


def mlp(rule: str, ei: bool, width: int = 16, **options) -> Circuit:
    pops = (E(width), I(width // 4)) if ei else (Units(width),)
    c = Circuit("mlp")
    c.input("img")
    c.area("h1", *pops)
    c.area("h2", *pops)
    c.readout("out")
    c.connect("img", "h1", dense(flatten=True))
    c.connect("h1", "h2", dense())
    c.connect("h2", "out", dense())
    c.feedback_everywhere(rule, **options)
    return c


def run(circuit: Circuit, path, **train) -> xr.Dataset:
    settings = {
        "data": "digits",
        "epochs": 6,
        "max_steps": 250,
        "record_every": 250,
        "device": "cpu",
        "optimizer": "sgd",
        "momentum": 0.9,
    } | train
    return xr.open_dataset(fit(circuit, Train(**settings), out=path))


def final(ds: xr.Dataset, name: str) -> np.ndarray:
    """The last recorded value of a metric (per projection for projection metrics)."""
    da = ds[name].dropna("step", how="all").isel(step=-1)
    return da.values.reshape(-1) if "projection" not in da.dims else da.values.reshape(-1)


# lr and decay: the mirrored difference W - B shrinks by (1 - lr * decay / (1 - momentum)) per step
@pytest.mark.parametrize(
    ("ei", "lr", "decay"), [(False, 0.05, 0.05), (True, 0.02, 0.1)], ids=["units", "ei"]
)
def test_kolen_pollack_feedback_angle_falls_below_10_degrees(tmp_path, ei, lr, decay):
    ds = run(mlp("kolen_pollack", ei), tmp_path / "r.nc", lr=lr, weight_decay=decay)
    angles = final(ds, "feedback_angle")
    assert math.isnan(angles[0]) and (angles[1:] < 10).all()  # img->h1 sends no error
    assert final(ds, "test_accuracy")[0] > 0.3


def test_product_fa_feedback_aligns_during_training(tmp_path):
    first = None
    for b_init, limit in (("orthogonal", 5), ("random", 30)):  # B B^T = I exactly / about I
        ds = run(
            mlp("product_fa", False, b_init=b_init),
            tmp_path / f"{b_init}.nc",
            lr=0.05,
            weight_decay=0.05,
            record_every=50,
        )
        angles = ds.feedback_angle.dropna("step", how="all").values.reshape(-1, 3)[:, 1:]
        first = angles[0] if first is None else first
        assert (angles[-1] < limit).all() and (angles[-1] < angles[0] - 10).all()
        assert (final(ds, "pfa_r_norm")[1:] > 0).all() and (final(ds, "pfa_b_norm")[1:] > 0).all()
        assert final(ds, "test_accuracy")[0] > 0.6


def test_product_fa_under_dales_law_aligns_partly(tmp_path):
    # W = s|V| reflects at zero, R does not: the product only follows W away from zero
    ds = run(
        mlp("product_fa", True, intermediate="EI"),
        tmp_path / "ei.nc",
        lr=0.02,
        weight_decay=0.1,
        record_every=50,
    )
    angles = ds.feedback_angle.dropna("step", how="all").values.reshape(-1, 3)[:, 1:]
    assert (angles[-1] < angles[0] - 5).all() and (angles[-1] < 70).all()


@pytest.mark.parametrize("ei", [False, True], ids=["units", "ei"])
def test_weight_mirror_trains_with_aligned_feedback(tmp_path, ei):
    ds = run(mlp("weight_mirror", ei), tmp_path / "wm.nc", optimizer="adam", lr=3e-3)
    assert (final(ds, "feedback_angle")[1:] < 15).all()
    assert final(ds, "test_accuracy")[0] > 0.8


@pytest.mark.parametrize("ei", [False, True], ids=["units", "ei"])
def test_ekdaa_trains_a_cnn_on_digits_far_above_chance(tmp_path, ei):
    pops = (lambda n: (E(n), I(max(1, n // 4)))) if ei else (lambda n: (Units(n),))
    c = Circuit("ek")
    c.input("img")
    c.area("v1", *pops(8), nonlinearity="tanh", pool="max")
    c.area("it", *pops(32), nonlinearity="tanh")
    c.readout("out")
    c.connect("img", "v1", conv(3))
    c.connect("v1", "it", dense(flatten=True))
    c.connect("it", "out", dense())
    c.feedback_everywhere("ekdaa")
    ds = run(c, tmp_path / "ek.nc", optimizer="adam", lr=3e-3, max_steps=200)
    assert final(ds, "test_accuracy")[0] > 0.7  # chance: 0.1


def test_ekdaa_trains_through_signum_with_batch_norm(tmp_path):
    c = Circuit("eks")
    c.input("img")
    c.area("v1", Units(16), nonlinearity="sign", batch_norm=True, pool="max")
    c.area("it", Units(64), nonlinearity="sign", batch_norm=True)
    c.readout("out")
    c.connect("img", "v1", conv(3))
    c.connect("v1", "it", dense(flatten=True))
    c.connect("it", "out", dense())
    c.feedback_everywhere("ekdaa", beta=3.0)
    ds = run(c, tmp_path / "eks.nc", optimizer="adam", lr=1e-3, max_steps=250)
    assert final(ds, "test_accuracy")[0] > 0.6  # chance: 0.1; backprop cannot train it at all


@pytest.mark.parametrize("rule", ["weight_mirror", "product_fa", "ekdaa"])
def test_resume_continues_bit_identically_with_mirror_phases_and_decay_schedule(
    tmp_path, monkeypatch, rule
):
    from biofa.data import DataSource

    c = mlp(rule, True)
    train = Train(
        epochs=2,
        batch_size=64,
        optimizer="sgd",
        lr=0.02,
        momentum=0.9,
        weight_decay=5e-3,
        weight_decay_milestones=(1,),
        weight_decay_gamma=0.02,
        record_every=5,
        eval_every=10,
        checkpoint_every=7,
        device="cpu",
    )
    with xr.open_dataset(fit(c, train, out=tmp_path / "ref.nc")) as ds:
        reference = {k: ds[k].values for k in ("loss", "feedback_angle", "feedback_norm")}
    real, calls = DataSource.train_batches, {"n": 0}

    def crashing(*args, **kwargs):
        for batch in real(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 26:  # after step 25 (epoch 1); the last checkpoint is step 21
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(DataSource, "train_batches", crashing)
    with pytest.raises(KeyboardInterrupt):
        fit(c, train, out=tmp_path / "run.nc")
    monkeypatch.setattr(DataSource, "train_batches", real)
    with xr.open_dataset(fit(c, train, out=tmp_path / "run.nc", resume=True)) as ds:
        for key, want in reference.items():
            np.testing.assert_array_equal(ds[key].values, want, err_msg=key)


def test_weight_decay_schedule_and_adamw():
    from biofa import compile
    from biofa.train import build_optimizers, set_weight_decay

    model = compile(mlp("kolen_pollack", False), input_shape=(1, 8, 8), num_classes=10)
    train = Train(
        optimizer="adamw",
        weight_decay=5e-3,
        weight_decay_milestones=(1, 3),
        weight_decay_gamma=0.02,
    )
    opts = build_optimizers(model, train)
    assert len(opts) == 2 and all(isinstance(o, torch.optim.AdamW) for o in opts)
    for epoch, want in ((0, 5e-3), (1, 1e-4), (2, 1e-4), (3, 2e-6), (0, 5e-3)):
        set_weight_decay(opts, train, epoch)
        for o in opts:
            assert all(g["weight_decay"] == pytest.approx(want) for g in o.param_groups)
