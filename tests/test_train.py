"""The training loop: reproducibility, resume, divergence, schedules, optimisers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr
from small_circuits import small_ei_cnn

from biofa import Circuit, Train
from biofa.data import DataSource, load
from biofa.train import Diverged, build_optimizers, fit, lr_factor


def small(rule: str = "feedback_alignment") -> Circuit:
    return small_ei_cnn(rule)


TRAIN = Train(
    epochs=2,
    batch_size=64,
    optimizer="adam",
    lr=1e-2,
    record_every=5,
    eval_every=10,
    schedule="cosine",
)


def values(path) -> dict[str, np.ndarray]:
    with xr.open_dataset(path) as ds:
        return {
            k: ds[k].values for k in ds.data_vars if k not in ("run_config",) if k != "wall_time"
        }


def test_fit_writes_the_schema_and_learns(tmp_path):
    path = fit(small(), TRAIN.replace(epochs=4), out=tmp_path / "run.nc")
    with xr.open_dataset(path) as ds:
        assert ds.attrs["status"] == "complete"
        assert set(ds.sizes) >= {"rule", "seed", "step", "projection"}
        assert ds.rule.values.tolist() == ["feedback_alignment"]
        for var in (
            "loss",
            "train_accuracy",
            "test_accuracy",
            "feedback_angle",
            "sign_concordance",
            "weight_norm",
            "feedback_norm",
        ):
            assert var in ds and "units" in ds[var].attrs and "long_name" in ds[var].attrs
        acc = ds.test_accuracy.squeeze().dropna("step")
        assert float(acc[-1]) > 0.6  # 10 classes: chance is 0.1
        assert int(ds.step[-1]) == 4 * load("digits").steps_per_epoch(64)


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    a = values(fit(small(), TRAIN, out=tmp_path / "a.nc"))
    b = values(fit(small(), TRAIN, out=tmp_path / "b.nc"))
    c = values(fit(small(), TRAIN.replace(seed=1), out=tmp_path / "c.nc"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(a["loss"], c["loss"])


def test_resume_after_a_crash_continues_the_same_trajectory(tmp_path, monkeypatch):
    train = TRAIN.replace(checkpoint_every=7)
    reference = values(fit(small(), train, out=tmp_path / "ref.nc"))

    real = DataSource.train_batches
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        for batch in real(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 26:  # dies after step 25; last checkpoint was at step 21
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(DataSource, "train_batches", crashing)
    with pytest.raises(KeyboardInterrupt):
        fit(small(), train, out=tmp_path / "run.nc")
    assert (tmp_path / "run.ckpt").exists()
    monkeypatch.setattr(DataSource, "train_batches", real)
    resumed = values(fit(small(), train, out=tmp_path / "run.nc", resume=True))
    for key in reference:
        np.testing.assert_array_equal(reference[key], resumed[key], err_msg=key)


def test_nan_loss_stops_naming_the_step_and_keeps_the_record(tmp_path, monkeypatch):
    real = DataSource.train_batches

    def poisoned(*args, **kwargs):
        for i, (x, y) in enumerate(real(*args, **kwargs)):
            yield (x * float("nan"), y) if i == 11 else (x, y)

    monkeypatch.setattr(DataSource, "train_batches", poisoned)
    with pytest.raises(Diverged, match="step 12"):
        fit(small(), TRAIN, out=tmp_path / "run.nc")
    with xr.open_dataset(tmp_path / "run.nc") as ds:
        assert ds.attrs["status"].startswith("diverged")
        assert ds.step.values.tolist()[:2] == [5, 10]
        assert np.isfinite(ds.loss.sel(step=10).values).all()


def test_lr_schedules_by_hand():
    t = Train(schedule="cosine")
    assert lr_factor(t, 0, 100, 10) == 1.0
    assert math.isclose(lr_factor(t, 50, 100, 10), 0.5)
    assert math.isclose(lr_factor(t, 100, 100, 10), 0.0, abs_tol=1e-12)
    s = Train(schedule="step", milestones=(2, 4), gamma=0.1)
    assert [round(lr_factor(s, k * 10, 100, 10), 6) for k in (0, 1, 2, 3, 4, 5)] == [
        1.0,
        1.0,
        0.1,
        0.1,
        0.01,
        0.01,
    ]


def test_separate_feedback_optimizer_settings():
    from biofa.nn import compile

    class Learned(torch.nn.Module):
        pass

    model = compile(small(), input_shape=(1, 8, 8), num_classes=10)
    for p in model.feedback_parameters():
        p.requires_grad_(True)  # pretend the rule learns its feedback
    opts = build_optimizers(model, Train(lr=0.1, feedback_optimizer="adam", feedback_lr=0.01))
    assert [type(o).__name__ for o in opts] == ["SGD", "Adam"]
    assert opts[1].param_groups[0]["lr"] == 0.01
    fb = {id(p) for p in model.feedback_parameters()}
    assert all(id(p) not in fb for p in opts[0].param_groups[0]["params"])


@pytest.mark.parametrize(
    "field,value",
    [
        ("epochs", 0),
        ("batch_size", -1),
        ("lr", 0.0),
        ("optimizer", "lbfgs"),
        ("precision", "fp8"),
        ("schedule", "linear"),
        ("device", "tpu"),
        ("lr", float("nan")),
        ("lr", float("inf")),
        ("lr", -1e-3),
        ("momentum", -0.5),
        ("momentum", 1.0),
        ("weight_decay", -1e-4),
        ("weight_decay", float("nan")),
        ("gamma", 0.0),
        ("feedback_lr", 0.0),
        ("feedback_lr", float("inf")),
        ("feedback_momentum", 2.0),
        ("feedback_weight_decay", -0.5),
        ("milestones", (5, 2)),
        ("milestones", (-1,)),
    ],
)
def test_train_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=f"^Train.{field}"):
        Train(**{field: value})


@pytest.mark.parametrize(
    "field,value",
    [("epochs", "3"), ("epochs", 2.5), ("augment", 1), ("lr", "0.1"), ("milestones", (1.5,))],
)
def test_train_rejects_wrong_types(field, value):
    with pytest.raises(TypeError, match=f"^Train.{field}="):
        Train(**{field: value})


def test_train_accepts_the_unset_feedback_values_and_ints_for_floats():
    t = Train(lr=1, feedback_lr=-1, feedback_momentum=-1, feedback_weight_decay=-1)
    assert t.lr == 1.0 and isinstance(t.lr, float) and Train(momentum=0).momentum == 0.0
