"""Training options the papers' recipes need: stratified training/test subsets, a held-out
validation split (the test set measured once, at the end), and finite-but-exploded runs flagged
as diverged."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

from biofa import Train
from biofa.data import load as load_dataset
from biofa.train import Diverged, fit
from biofa.train.datasets import select
from biofa.train.steppers import SeedBatchedStepper, SingleStepper
from tests.small_circuits import small_ei_cnn

TRAIN = Train(data="digits", epochs=2, batch_size=32, lr=0.05, record_every=5)


def largest_remainder(counts: list[int], n: int) -> list[int]:
    """Per-class counts for a stratified choice of ``n`` (written out independently)."""
    total = sum(counts)
    quota = [n * c / total for c in counts]
    take = [math.floor(q) for q in quota]
    order = sorted(range(len(counts)), key=lambda k: (take[k] - quota[k], k))
    for k in order[: n - sum(take)]:
        take[k] += 1
    return take


def test_subsets_and_validation_are_stratified_and_disjoint():
    data = load_dataset("digits")
    counts = torch.bincount(data.train_labels).tolist()
    run = select(data, Train(validation=200, train_subset=500, test_subset=100))
    assert run.validation.n_test == 200 and run.train.n_train == 500 and run.train.n_test == 100
    held = torch.bincount(run.validation.test_labels, minlength=10).tolist()
    assert held == largest_remainder(counts, 200)
    rest = [c - h for c, h in zip(counts, held)]
    assert torch.bincount(run.train.train_labels, minlength=10).tolist() == largest_remainder(
        rest, 500
    )
    # the held-out images are not among the training images
    train_x = {bytes(x.numpy()) for x in run.train.train_examples(torch.arange(500))[0]}
    val_x = [bytes(x.numpy()) for x in run.validation.test_examples(torch.arange(200))[0]]
    all_x = [bytes(x.numpy()) for x in data.train_examples(torch.arange(data.n_train))[0]]
    unique = {x for x in all_x if all_x.count(x) == 1}  # digits has a few duplicate images
    assert not train_x & (set(val_x) & unique)


def test_counts_that_do_not_fit_name_the_field():
    data = load_dataset("digits")
    with pytest.raises(ValueError, match="Train.train_subset=99999"):
        select(data, Train(train_subset=99999))
    with pytest.raises(ValueError, match="Train.validation=99999"):
        select(data, Train(validation=99999))
    with pytest.raises(ValueError, match="Train.test_subset must be >= 0"):
        Train(test_subset=-1)


def test_validation_reports_periodically_and_the_test_set_only_at_the_end(tmp_path):
    train = TRAIN.replace(validation=300, train_subset=640)  # 20 steps per epoch
    with xr.open_dataset(fit(small_ei_cnn(), train, out=tmp_path / "run.nc")) as ds:
        val = ds.validation_accuracy.squeeze().dropna("step")
        test = ds.test_accuracy.squeeze().dropna("step")
        assert val.step.values.tolist() == [20, 40]  # every epoch
        assert test.step.values.tolist() == [40]  # the final number only
        assert ds.validation_accuracy.attrs["long_name"].startswith("accuracy on the held-out")
        assert ds.attrs["status"] == "complete"


def test_validation_and_subsets_work_with_batched_seeds(tmp_path):
    train = TRAIN.replace(validation=300, train_subset=320, test_subset=200, epochs=1)
    single = [fit(small_ei_cnn(), train.replace(seed=s), out=tmp_path / f"s{s}.nc") for s in (0, 1)]
    batched = fit(small_ei_cnn(), train, out=[tmp_path / f"b{s}.nc" for s in (0, 1)], seeds=[0, 1])
    for a, b in zip(single, batched):
        with xr.open_dataset(a) as x, xr.open_dataset(b) as y:
            for name in ("validation_accuracy", "test_accuracy"):
                u, v = (d[name].squeeze().dropna("step") for d in (x, y))
                np.testing.assert_allclose(u.values, v.values, atol=1 / 200)
                assert u.step.values.tolist() == v.step.values.tolist() == [10]


def _exploding(stepper_class, after: int, seeds=(0,)):
    """``stepper_class.step`` reporting a loss of 1e26 (finite: what an exploded net's
    cross-entropy looks like) and no correct answer from step ``after`` on, for the runs at
    ``seeds`` (positions)."""
    real = stepper_class.step
    count = [0]

    def step(self, x, y):
        losses, hits, n = real(self, x, y)
        count[0] += 1
        if count[0] > after:
            scale = torch.ones_like(losses)
            scale[list(seeds)] = 1e26
            losses = losses * scale
            hits = torch.where(scale > 1, torch.zeros_like(hits), hits)
        return losses, hits, n

    return step


def test_a_finite_but_exploded_loss_is_flagged_diverged(tmp_path, monkeypatch):
    monkeypatch.setattr(SingleStepper, "step", _exploding(SingleStepper, after=7))
    with pytest.raises(Diverged, match=r"mean training loss .* > Train.diverge_loss=10000"):
        fit(small_ei_cnn(), TRAIN, out=tmp_path / "run.nc")
    with xr.open_dataset(tmp_path / "run.nc") as ds:
        status = ds.attrs["status"]
        assert status.startswith("diverged: mean training loss") and "at step 10" in status
        loss = ds.loss.squeeze()
        assert loss.step.values.tolist() == [5, 10]  # stopped at the record step that saw it
        assert np.isfinite(loss.values).all() and float(loss.sel(step=10)) > 1e4


def test_a_huge_loss_of_a_run_that_still_learns_is_not_diverged(tmp_path, monkeypatch):
    real = SingleStepper.step

    def step(self, x, y):  # the loss of a few wildly wrong answers, most answers right
        losses, hits, n = real(self, x, y)
        return losses * 1e26, torch.full_like(hits, float(n)), n

    monkeypatch.setattr(SingleStepper, "step", step)
    path = fit(small_ei_cnn(), TRAIN.replace(epochs=1), out=tmp_path / "r.nc")
    with xr.open_dataset(path) as ds:
        assert ds.attrs["status"] == "complete"


def test_the_divergence_check_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setattr(SingleStepper, "step", _exploding(SingleStepper, after=7))
    path = fit(small_ei_cnn(), TRAIN.replace(diverge_loss=0.0, epochs=1), out=tmp_path / "r.nc")
    with xr.open_dataset(path) as ds:
        assert ds.attrs["status"] == "complete"


def test_a_seed_that_explodes_does_not_stop_the_batched_others(tmp_path, monkeypatch):
    step = _exploding(SeedBatchedStepper, after=3, seeds=(1,))
    monkeypatch.setattr(SeedBatchedStepper, "step", step)
    outs = [tmp_path / f"s{s}.nc" for s in (0, 1)]
    with pytest.raises(Diverged, match="1 of 2 seeds diverged: seed 1: mean training loss"):
        fit(small_ei_cnn(), TRAIN.replace(epochs=1), out=outs, seeds=[0, 1])
    statuses = []
    for path in outs:
        with xr.open_dataset(path) as ds:
            statuses.append(ds.attrs["status"])
    assert statuses[0] == "complete" and statuses[1].startswith("diverged: mean training loss")
