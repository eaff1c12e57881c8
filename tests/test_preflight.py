"""Checks before training: memory estimated from shapes (refused in one line above what is
available), a batch larger than the data set (warned), and ``dry_run`` (data, memory, compile,
one forward/backward: everything short of training)."""

from __future__ import annotations

import pytest
import torch
from small_circuits import small_ei_cnn

from biofa import Circuit, E, I, Train, Units, compile, conv, dense
from biofa.data import load
from biofa.train import fit, preflight

CPU = torch.device("cpu")


def mlp(width: int) -> Circuit:
    c = Circuit("wide")
    c.input("image")
    c.area("h", E(width), I(max(1, width // 4)))
    c.readout("out")
    c.connect("image", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    c.feedback_everywhere("feedback_alignment")
    return c


@pytest.mark.parametrize(
    "circuit, activations",
    [(small_ei_cnn(), 64 + 8 * 4 * 4 + 16 + 10), (mlp(40), 64 + 50 + 10)],  # numbers per image
    ids=["cnn", "mlp"],
)
def test_the_estimate_counts_the_weights_of_the_compiled_network(circuit, activations):
    model = compile(circuit, input_shape=(1, 8, 8), num_classes=10)
    weights = sum(g.weight.numel() for g in model.groups.values())
    train = Train(optimizer="adam", batch_size=16)
    needed = preflight.memory_needed(circuit, train, (1, 8, 8), 10)
    assert needed.weights == weights
    assert needed.weight_bytes == weights * 4 * (2 + 2)  # weight, gradient, Adam's two moments
    assert needed.activations == activations
    assert needed.activation_bytes == needed.activations * 16 * 4 * 2
    sgd = preflight.memory_needed(circuit, Train(optimizer="sgd", momentum=0.0), (1, 8, 8), 10)
    assert sgd.weight_bytes == weights * 4 * 2


def test_a_circuit_too_large_for_memory_is_refused_before_anything_is_allocated(tmp_path):
    huge = mlp(10**9)  # 64e9 + 1.25e9*10 weights: no machine running this test has 1.2 TB
    with pytest.raises(ValueError) as info:
        fit(huge, Train(max_steps=1), out=tmp_path / "run.nc")
    message = str(info.value)
    assert message.startswith("circuit 'wide' needs at least ") and "\n" not in message
    assert "weights (with gradients and optimiser state)" in message
    assert "for the activations of one batch of 32; " in message and "available on cpu" in message
    assert list(tmp_path.iterdir()) == []


def test_the_available_memory_decides(monkeypatch):
    digits = load("digits")
    needed = preflight.memory_needed(mlp(40), Train(), digits.input_shape, 10)
    monkeypatch.setattr(preflight, "available_memory", lambda device: needed.total - 1)
    with pytest.raises(ValueError, match=r"needs at least .*; [\d.]+ kB is available on cpu"):
        preflight.check_memory(mlp(40), Train(), digits, CPU)
    monkeypatch.setattr(preflight, "available_memory", lambda device: needed.total)
    assert preflight.check_memory(mlp(40), Train(), digits, CPU) == needed
    assert preflight.available_memory(CPU) > 0  # this machine's /proc/meminfo


def test_a_batch_larger_than_the_training_set_warns(caplog, tmp_path):
    fit(mlp(8), Train(batch_size=5000, max_steps=1), out=tmp_path / "run.nc")
    assert "Train.batch_size=5000 is larger than the training set of 'digits' (1437" in caplog.text


def test_dry_run_builds_and_runs_a_step_without_training():
    summary = preflight.dry_run(small_ei_cnn(), Train(), CPU)
    assert summary.startswith("digits: 1437 training images of shape (1, 8, 8), 10 classes; ")
    shrinking = Circuit("shrinking")
    shrinking.input("image")
    shrinking.area("v1", Units(4), pool="max", pool_size=4)
    shrinking.area("v2", Units(4), pool="max", pool_size=4)
    shrinking.readout("out")
    shrinking.connect("image", "v1", conv(3))
    shrinking.connect("v1", "v2", conv(3))
    shrinking.connect("v2", "out", dense(flatten=True))
    with pytest.raises(ValueError, match="shrinks|nothing|pool"):
        preflight.dry_run(shrinking, Train(), CPU)
    with pytest.raises(ValueError, match="no_such_data"):
        preflight.dry_run(small_ei_cnn(), Train(data="no_such_data"), CPU)
