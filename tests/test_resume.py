"""Stopping and resuming runs: SIGINT/SIGTERM write the record and a checkpoint, ``resume=True``
continues bit for bit, and refuses (one line) a checkpoint of another configuration or one that
does not fit."""

from __future__ import annotations

import dataclasses
import os
import signal

import numpy as np
import pytest
import torch
import xarray as xr
from small_circuits import small_ei_cnn

from biofa import Train
from biofa.data import DataSource
from biofa.train import Interrupted, fit

TRAIN = Train(epochs=2, batch_size=64, optimizer="adam", lr=1e-2, record_every=5, eval_every=10,
              schedule="cosine")  # fmt: skip


def values(path) -> dict[str, np.ndarray]:
    with xr.open_dataset(path) as ds:
        return {k: ds[k].values for k in ds.data_vars if k not in ("run_config", "wall_time")}


@pytest.fixture
def signal_at(monkeypatch):
    """``signal_at(n, sig)``: the process sends itself ``sig`` while batch ``n`` is delivered."""
    real = DataSource.train_batches

    def arm(n: int, sig: int) -> None:
        calls = {"n": 0}

        def batches(*args, **kwargs):
            for batch in real(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == n:
                    os.kill(os.getpid(), sig)
                yield batch

        monkeypatch.setattr(DataSource, "train_batches", batches)

    yield arm
    monkeypatch.setattr(DataSource, "train_batches", real)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_writes_the_record_and_a_checkpoint_and_resume_is_bit_identical(
    tmp_path, signal_at, monkeypatch, sig
):
    reference = values(fit(small_ei_cnn("feedback_alignment"), TRAIN, out=tmp_path / "ref.nc"))
    signal_at(13, sig)  # the step on batch 13 finishes, then the run stops: checkpoint_every=0
    with pytest.raises(Interrupted) as info:
        fit(small_ei_cnn("feedback_alignment"), TRAIN, out=tmp_path / "run.nc")
    assert info.value.signum == sig and info.value.step == 13
    assert isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(sig) is not None and "StopRequests" not in repr(signal.getsignal(sig))
    with xr.open_dataset(tmp_path / "run.nc") as ds:
        assert ds.attrs["status"] == f"interrupted: {signal.Signals(sig).name} at step 13 of 46"
        assert ds.step.values.tolist() == [5, 10]
    assert (tmp_path / "run.ckpt").exists() and not (tmp_path / "run.model.pt").exists()
    monkeypatch.undo()
    resumed = values(fit(small_ei_cnn("feedback_alignment"), TRAIN, out=tmp_path / "run.nc",
                         resume=True))  # fmt: skip
    assert resumed.keys() == reference.keys()
    for key in reference:
        np.testing.assert_array_equal(reference[key], resumed[key], err_msg=key)
    with xr.open_dataset(tmp_path / "run.nc") as ds:
        assert ds.attrs["status"] == "complete"
        assert ds.attrs["resumed"].endswith("resumed at step 13")
    assert not (tmp_path / "run.ckpt").exists()  # checkpoint_every=0: removed at the end
    ref_model = torch.load(tmp_path / "ref.model.pt", weights_only=True)["state_dict"]
    run_model = torch.load(tmp_path / "run.model.pt", weights_only=True)["state_dict"]
    assert ref_model.keys() == run_model.keys()
    assert all(torch.equal(ref_model[k], run_model[k]) for k in ref_model)


def test_resume_without_a_checkpoint_says_so_and_starts_at_step_0(tmp_path, caplog):
    fit(small_ei_cnn(), TRAIN.replace(max_steps=6), out=tmp_path / "run.nc", resume=True)
    assert f"no checkpoint {tmp_path / 'run.ckpt'}: starting from step 0" in caplog.text


@pytest.fixture
def stopped(tmp_path, signal_at):
    """A run of TRAIN stopped by SIGTERM after step 8, with its identity as the CLI gives it."""
    config = {"circuit": {"width": 8}, "train": dataclasses.asdict(TRAIN)}
    signal_at(8, signal.SIGTERM)
    with pytest.raises(Interrupted):
        fit(small_ei_cnn(), TRAIN, out=tmp_path / "run.nc", run_config=config,
            attrs={"spec_sha256": "a" * 64})  # fmt: skip
    return tmp_path / "run.nc", config


def test_resume_with_an_allowed_change_records_it(stopped, monkeypatch):
    monkeypatch.undo()
    out, config = stopped
    config = {**config, "train": {**config["train"], "epochs": 3}}
    fit(small_ei_cnn(), TRAIN.replace(epochs=3), out=out, resume=True, run_config=config,
        attrs={"spec_sha256": "a" * 64})  # fmt: skip
    with xr.open_dataset(out) as ds:
        assert ds.attrs["resumed"].endswith("resumed at step 8: train.epochs 2 -> 3")
        assert int(ds.step[-1]) == 69 and "epochs" in ds.run_config.item()


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(train={"lr": 1e-3}), r"train\.lr 0\.01 -> 0\.001"),
        (dict(train={"optimizer": "sgd"}), r"train\.optimizer adam -> sgd"),
        (dict(circuit={"width": 16}), r"circuit\.width 8 -> 16"),
        (dict(sha="b" * 64), r"spec_sha256 aaaaaaaaaaaa\.\.\.aaaaaaaa -> bbbbbbbbbbbb"),
    ],
)
def test_resume_refuses_another_configuration_in_one_line(stopped, monkeypatch, change, message):
    monkeypatch.undo()
    out, config = stopped
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    config = {
        "circuit": {**config["circuit"], **change.get("circuit", {})},
        "train": {**config["train"], **change.get("train", {})},
    }
    train = TRAIN.replace(**change.get("train", {}))
    with pytest.raises(ValueError, match=f"^cannot resume from .*run.ckpt: it was trained with "
                                         f"another configuration \\({message}"):  # fmt: skip
        fit(small_ei_cnn(), train, out=out, resume=True, run_config=config,
            attrs={"spec_sha256": change.get("sha", "a" * 64)})  # fmt: skip
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before  # nothing touched


def test_resume_refuses_another_circuit_without_a_run_config(tmp_path, signal_at, monkeypatch):
    signal_at(4, signal.SIGINT)
    with pytest.raises(Interrupted):
        fit(small_ei_cnn(), TRAIN, out=tmp_path / "run.nc")
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"another configuration \(circuit declaration [0-9a-f]"):
        fit(small_ei_cnn("kolen_pollack"), TRAIN, out=tmp_path / "run.nc", resume=True)


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 100, "truncate"])
def test_an_unreadable_checkpoint_is_one_line(tmp_path, signal_at, monkeypatch, content):
    signal_at(4, signal.SIGINT)
    with pytest.raises(Interrupted):
        fit(small_ei_cnn(), TRAIN, out=tmp_path / "run.nc")
    monkeypatch.undo()
    ckpt = tmp_path / "run.ckpt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2] if content == "truncate" else content)
    record = (tmp_path / "run.nc").read_bytes()
    with pytest.raises(ValueError, match=r"^checkpoint .*run\.ckpt cannot be read \("):
        fit(small_ei_cnn(), TRAIN, out=tmp_path / "run.nc", resume=True)
    assert (tmp_path / "run.nc").read_bytes() == record


def test_a_checkpoint_that_does_not_fit_is_one_line(tmp_path, signal_at, monkeypatch):
    """An old-format checkpoint (no identity to compare) of another width: the state does not
    load, and the error says so in one line."""
    signal_at(4, signal.SIGINT)
    with pytest.raises(Interrupted):
        fit(small_ei_cnn(), TRAIN, out=tmp_path / "run.nc")
    monkeypatch.undo()
    state = torch.load(tmp_path / "run.ckpt", weights_only=True)
    del state["identity"]
    torch.save({**state, "version": 2}, tmp_path / "run.ckpt")
    message = r"^cannot resume from .*run\.ckpt: it does not fit this run \(RuntimeError: Error"
    with pytest.raises(ValueError, match=message):
        fit(small_ei_cnn(width=12), TRAIN, out=tmp_path / "run.nc", resume=True)


def test_batched_seeds_stop_and_resume_like_single_runs(tmp_path, signal_at, monkeypatch):
    outs = [tmp_path / f"seed-{s}.nc" for s in (0, 1)]
    reference = fit(small_ei_cnn(), TRAIN, out=[tmp_path / f"ref-{s}.nc" for s in (0, 1)],
                    seeds=[0, 1])  # fmt: skip
    signal_at(9, signal.SIGTERM)  # both seeds' streams are drawn: batch 9 is step 5
    with pytest.raises(Interrupted) as info:
        fit(small_ei_cnn(), TRAIN, out=outs, seeds=[0, 1])
    assert info.value.paths == outs and all(p.with_suffix(".ckpt").exists() for p in outs)
    monkeypatch.undo()
    resumed = fit(small_ei_cnn(), TRAIN, out=outs, seeds=[0, 1], resume=True)
    for ref, run in zip(reference, resumed):
        a, b = values(ref), values(run)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
