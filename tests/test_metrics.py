"""Alignment metrics against hand computations, and the metric registry."""

import math

import pytest
import torch

from biofa.measure import metrics, registry
from biofa.measure.metrics import (
    METRICS,
    angle,
    error_angle,
    feedback_angle,
    feedback_norm,
    feedback_update_norm,
    frobenius_norm,
    register_metric,
    sign_concordance,
    update_angle,
    weight_norm,
)

W = torch.tensor([[1.0, 2.0], [-3.0, 0.5]])


@pytest.mark.parametrize(
    ("b", "expected"),
    [
        (W.clone(), 0.0),
        (-W, 180.0),
        (torch.tensor([[2.0, -1.0], [0.5, 3.0]]), 90.0),  # <W, B> = 2 - 2 - 1.5 + 1.5 = 0
    ],
)
def test_angle_parallel_antiparallel_orthogonal(b, expected):
    assert angle(W, b).item() == pytest.approx(expected, abs=1e-9)


def test_angle_45_degrees():
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert angle(a, b).item() == pytest.approx(45.0, abs=1e-12)
    # 60 degrees: cos = 1 / 2
    c = torch.tensor([1.0, 0.0])
    d = torch.tensor([1.0, math.sqrt(3.0)])
    assert angle(c, d).item() == pytest.approx(60.0, abs=1e-5)


def test_angle_scale_invariant_and_symmetric():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    ref = math.degrees(math.acos((a * b).sum().item() / (a.norm() * b.norm()).item()))
    assert angle(a, b).item() == pytest.approx(ref, abs=1e-4)
    assert angle(3.0 * a, 0.01 * b).item() == pytest.approx(ref, abs=1e-4)
    assert angle(b, a).item() == pytest.approx(angle(a, b).item(), abs=1e-12)


def test_angle_small_angles_are_accurate():
    # arccos of a float32 cosine cannot resolve 1e-4 degrees; the atan2 form can.
    a = torch.tensor([1.0, 0.0], dtype=torch.float32)
    eps = math.radians(1e-4)
    b = torch.tensor([math.cos(eps), math.sin(eps)], dtype=torch.float32)
    assert angle(a, b).item() == pytest.approx(1e-4, rel=1e-3)


def test_angle_zero_norm_is_nan():
    assert math.isnan(angle(torch.zeros(2, 2), W).item())
    assert math.isnan(angle(W, torch.zeros(2, 2)).item())
    assert math.isnan(angle(torch.zeros(0), torch.zeros(0)).item())


def test_angle_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        angle(W, W.reshape(-1))


def test_returns_0d_tensor_on_device_without_grad():
    w = W.clone().requires_grad_(True)
    for out in (
        angle(w, W),
        feedback_angle(w, W),
        sign_concordance(w, W),
        frobenius_norm(w),
    ):
        assert isinstance(out, torch.Tensor) and out.dim() == 0
        assert out.device == W.device and not out.requires_grad
        assert out.dtype == torch.float64


def test_wrappers_equal_angle():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    ref = angle(a, b)
    for fn in (feedback_angle, error_angle, update_angle):
        assert fn(a, b).item() == ref.item()


def test_conv_shaped_weights():
    w = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(2))
    assert feedback_angle(w, 2 * w).item() == pytest.approx(0.0, abs=1e-6)
    assert feedback_angle(w, -w).item() == pytest.approx(180.0, abs=1e-6)


def test_sign_concordance_by_hand():
    w = torch.tensor([[1.0, -2.0], [3.0, -4.0]])
    b = torch.tensor([[0.5, -0.1], [7.0, 4.0]])  # 3 of 4 agree
    assert sign_concordance(w, b).item() == 0.75
    assert sign_concordance(w, w).item() == 1.0
    assert sign_concordance(w, -w).item() == 0.0
    # both zero: concordant; exactly one zero: not
    z = torch.tensor([0.0, 0.0, 1.0, -1.0])
    y = torch.tensor([0.0, 1.0, 0.0, -2.0])
    assert sign_concordance(z, y).item() == 0.5


def test_norms_by_hand():
    t = torch.tensor([[3.0, 4.0], [0.0, 12.0]])  # sqrt(9 + 16 + 144) = 13
    for fn in (frobenius_norm, weight_norm, feedback_norm, feedback_update_norm):
        assert fn(t).item() == 13.0
    assert frobenius_norm(torch.ones(2, 3, 2, 2)).item() == pytest.approx(math.sqrt(24))


def test_registry_contents():
    run = {"loss", "train_accuracy", "test_accuracy", "learning_rate", "wall_time"}
    proj = {
        "feedback_angle",
        "error_angle",
        "update_angle",
        "sign_concordance",
        "weight_norm",
        "feedback_norm",
        "feedback_update_norm",
    }
    assert run | proj <= set(METRICS)
    assert all(METRICS[n].per == "run" for n in run)
    assert all(METRICS[n].per == "projection" for n in proj)
    assert METRICS["wall_time"].units == "s"
    assert METRICS["feedback_angle"].units == "degree"
    assert METRICS["loss"].long_name == "training loss (cross-entropy)"
    assert METRICS["feedback_angle"].fn is feedback_angle
    for info in METRICS.values():
        assert info.long_name and info.units in ("1", "degree", "s")


def test_register_metric_and_decorator(monkeypatch):
    monkeypatch.setattr(registry, "METRICS", dict(METRICS))  # leave the real registry alone
    info = metrics.register_metric("grad_norm", "gradient norm", "1", "run")
    assert registry.METRICS["grad_norm"] is info
    assert metrics.register_metric("grad_norm", "gradient norm", "1", "run") == info
    with pytest.raises(ValueError, match="already registered"):
        metrics.register_metric("grad_norm", "other meaning", "1", "run")

    @metrics.metric(long_name="max |W|", units="1", inputs=("weight",))
    def max_abs(weight):
        return weight.abs().max()

    entry = registry.METRICS["max_abs"]
    assert entry.fn is max_abs and entry.source is registry.ProjectionInputs
    assert entry in registry.computed(registry.ProjectionInputs)
    w = torch.tensor([[1.0, -3.0]])
    assert entry.compute(registry.ProjectionInputs(w, None, {})).item() == 3.0


@pytest.mark.parametrize(
    ("inputs", "per", "match"),
    [
        (("weight", "delivered_error"), "projection", "not all from one of"),
        (("weight",), "run", "per projection, not per run"),
        (("model",), "projection", "per run, not per projection"),
        ((), "projection", "needs `inputs`"),
    ],
)
def test_metric_inputs_must_come_from_one_source(monkeypatch, inputs, per, match):
    monkeypatch.setattr(registry, "METRICS", dict(METRICS))
    with pytest.raises(ValueError, match=match):
        registry.register_metric("bad", "bad", "1", per, lambda *a: a[0], inputs)


def test_a_metric_whose_input_is_missing_is_not_computed():
    entry = METRICS["feedback_angle"]
    w = torch.ones(2, 2)
    assert entry.compute(registry.ProjectionInputs(w, None, {})) is None
    assert entry.compute(registry.ProjectionInputs(w, w, {})).item() == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("name", "per", "match"),
    [
        ("step", "run", "reserved"),
        ("feedback_rule", "projection", "reserved"),
        ("a-b", "run", "identifier"),
        ("x", "layer", "allowed"),
    ],  # fmt: skip
)
def test_register_metric_rejects(name, per, match):
    with pytest.raises(ValueError, match=match):
        register_metric(name, "x", "1", per)
