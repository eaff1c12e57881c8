"""The GPU fast path (skipped without CUDA; run with ``python -m pytest -m gpu``).

* no host-device synchronisation inside a training step except at record/eval steps
  (``torch.cuda.set_sync_debug_mode("error")`` around everything else ``fit`` does per step);
* data resident on the device, ``channels_last``, bf16 autocast, ``Train(compile=True)``;
* many seeds at once on the GPU equal separate runs.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import xarray as xr

import biofa.train as train_mod
from biofa import Circuit, E, I, Train, conv, dense
from biofa.data import DataSource, InMemoryDataSet

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def small(rule: str = "feedback_alignment") -> Circuit:
    c = Circuit("small")
    c.input("image")
    c.area("v1", E(12), I(4), batch_norm=True, pool="max")
    c.area("v2", E(24), I(8), batch_norm=True, pool="global_avg")
    c.readout("out")
    c.connect("image", "v1", conv(3))
    c.connect("v1", "v2", conv(3))
    c.connect("v2", "out", dense())
    if rule != "backprop":
        c.feedback_everywhere(rule)
    return c


@contextlib.contextmanager
def sync_mode(mode: str):
    before = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode(mode)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(before)


@pytest.mark.parametrize("rule", ["backprop", "feedback_alignment", "kolen_pollack", "usf",
                                  "brsf", "direct_feedback_alignment"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_no_host_sync_between_record_steps(tmp_path, monkeypatch, rule, precision):
    """Every step that is not a record, evaluation or end-of-epoch step runs entirely under
    sync-debug mode "error": the body of ``fit``'s loop for batch ``b`` runs while the batch
    iterator is suspended after yielding it, so the iterator sets the mode per step."""
    train = Train(data="digits", batch_size=64, max_steps=30, record_every=10, eval_every=15,
                  precision=precision, device="cuda", augment=True)
    per_epoch = -(-1437 // train.batch_size)  # the digits' 1437 training images
    relaxed = {s for s in range(1, 31) if s % 10 == 0 or s % 15 == 0 or s % per_epoch == 0}
    relaxed |= {s + 1 for s in range(0, 31, per_epoch)}  # an epoch's first step sets it up
    strict_steps = []
    original = DataSource.train_batches

    def batches(data, batch_size, *, seed, epoch, start_batch=0, **kwargs):
        step = epoch * per_epoch + start_batch
        for x, y in original(data, batch_size, seed=seed, epoch=epoch, start_batch=start_batch,
                             **kwargs):
            step += 1
            strict = step not in relaxed
            if strict:
                strict_steps.append(step)
            with sync_mode("error" if strict else "default"):
                yield x, y

    monkeypatch.setattr(DataSource, "train_batches", batches)
    path = train_mod.fit(small(rule), train, out=tmp_path / "run.nc")
    assert len(strict_steps) >= 20
    with xr.open_dataset(path) as ds:
        assert ds.attrs["status"] == "complete" and "cuda" in ds.attrs["device"]


def test_data_resident_channels_last_bf16_and_compile(tmp_path, monkeypatch):
    placed = []
    original = InMemoryDataSet.place

    def spy(data, device):
        out = original(data, device)
        placed.append(out.train_x.device.type)
        return out

    monkeypatch.setattr(InMemoryDataSet, "place", spy)
    train = Train(data="digits", batch_size=64, max_steps=12, record_every=6, precision="bf16",
                  device="cuda", compile=True, augment=True)
    path = train_mod.fit(small(), train, out=tmp_path / "run.nc")
    assert placed == ["cuda"], "the digits live on the GPU; batches and augmentation are made there"
    with xr.open_dataset(path) as ds:
        assert np.isfinite(ds.loss.values[~np.isnan(ds.loss.values)]).all()


def test_a_set_too_large_for_the_gpu_stays_pinned_and_gives_the_resident_batches(monkeypatch):
    import biofa.data

    digits = biofa.data.load("digits")
    resident = digits.place("cuda")
    free, total = torch.cuda.mem_get_info()
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1024, total))
    host = digits.place("cuda")
    assert resident.train_x.is_cuda and not host.train_x.is_cuda and host.train_x.is_pinned()
    assert host.device.type == "cuda"
    kw = dict(seed=1, epoch=2, augment=True, start_batch=1)
    pairs = list(zip(host.train_batches(128, **kw), resident.train_batches(128, **kw)))
    assert len(pairs) == resident.steps_per_epoch(128) - 1
    for (xa, ya), (xb, yb) in pairs + list(zip(host.test_batches(100), resident.test_batches(100))):
        assert xa.is_cuda and ya.is_cuda
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    with sync_mode("error"):  # a batch from pinned memory: no host-device synchronisation
        it = host.train_batches(128, seed=0, epoch=0, augment=True, start_batch=2)
    x, y = next(it)
    with sync_mode("error"):
        x, y = next(it)
    assert x.shape == (128, 1, 8, 8)


def test_many_seeds_on_the_gpu_equal_separate_runs(tmp_path):
    train = Train(data="digits", batch_size=64, max_steps=8, record_every=4, device="cuda",
                  optimizer="sgd", lr=0.05)
    paths = train_mod.fit(small(), train, out=[tmp_path / "b0.nc", tmp_path / "b1.nc"],
                          seeds=[0, 1])  # fmt: skip
    for seed, path in zip([0, 1], paths):
        ref = train_mod.fit(small(), train.replace(seed=seed), out=tmp_path / f"r{seed}.nc")
        with xr.open_dataset(path) as a, xr.open_dataset(ref) as b:
            np.testing.assert_allclose(a.loss.values, b.loss.values, rtol=1e-3, atol=1e-4)
