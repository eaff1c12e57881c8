"""Peer-compatible conventions against the peers' own formulas: Xavier / Kaiming-uniform forward
and feedback initialisation (BioTorch, PFA code), BioTorch's and Xiao et al.'s sign-concordant
feedback scales, BioTorch's brSF redraw policy, and PFA-o as the PFA authors define it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr
from torch.nn.init import _calculate_fan_in_and_fan_out as torch_fans

from biofa import Circuit, Train, Units, compile, conv, dense
from biofa.nn.seeds import generator
from biofa.rules import FeedbackContext, create
from biofa.rules.initializers import draw, init_std
from biofa.train import fit


def net(rule: str = "backprop", init: str = "he_normal", **options) -> Circuit:
    """A 3x3 conv 16 -> 64, a 64 -> 64 conv, a flattening dense layer and a dense readout."""
    c = Circuit("conventions", init=init)
    c.input("image")
    c.area("c1", Units(64), batch_norm=True)
    c.area("c2", Units(64), batch_norm=True, pool="max")
    c.area("h", Units(256))
    c.readout("out")
    c.connect("image", "c1", conv(3))
    c.connect("c1", "c2", conv(3))
    c.connect("c2", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    if rule != "backprop":
        c.feedback_everywhere(rule, **options)
    return c


def build(rule="backprop", init="he_normal", **options):
    return compile(net(rule, init, **options), input_shape=(16, 8, 8), num_classes=10, seed=3)


def xavier_bound(t: torch.Tensor) -> float:
    fan_in, fan_out = torch_fans(t)  # BioTorch's and torch's own fans
    return math.sqrt(6.0 / (fan_in + fan_out))


def test_default_init_is_he_normal_as_before():
    model = build()
    group = model.groups["c1__to__c2"]
    expected = torch.randn(group.weight.shape, generator=generator(3, "weight", "c1->c2"))
    expected = expected * (math.sqrt(2.0) / math.sqrt(64 * 9))  # He et al.: gain / sqrt(fan_in)
    assert torch.equal(group.weight.detach(), expected)


def test_xavier_forward_and_feedback_weights_follow_torchs_xavier_uniform():
    model = build("feedback_alignment", "xavier_uniform")
    for group in model.groups.values():
        for t in (group.weight.detach(), group.feedback["B"].detach()):
            a = xavier_bound(t)
            assert float(t.abs().max()) <= a
            assert float(t.abs().max()) > 0.95 * a  # uniform up to the bound
            if t.numel() > 10_000:  # U(-a, a): std a / sqrt(3)
                assert float(t.std()) == pytest.approx(a / math.sqrt(3.0), rel=0.03)
        w, b = group.weight.detach(), group.feedback["B"].detach()
        assert not torch.equal(w, b)  # drawn independently, as BioTorch draws B


def test_kaiming_uniform_is_pytorchs_default_layer_init():
    model = build("kolen_pollack", "kaiming_uniform")
    group = model.groups["c1__to__c2"]
    reference = torch.nn.Conv2d(64, 64, 3)  # reset_parameters: kaiming_uniform_(a=sqrt(5))
    bound = float(reference.weight.detach().abs().max())
    for t in (group.weight.detach(), group.feedback["B"].detach()):
        assert float(t.abs().max()) == pytest.approx(bound, rel=0.01)
        assert float(t.std()) == pytest.approx(float(reference.weight.detach().std()), rel=0.03)


def test_draw_reports_the_std_it_draws_with():
    for init in ("he_normal", "xavier_uniform", "kaiming_uniform"):
        t = draw(init, (400, 300), 300, 400, torch.Generator().manual_seed(0))
        assert float(t.std()) == pytest.approx(init_std(init, 300, 400), rel=0.01)


@pytest.mark.parametrize("rule", ["usf", "frsf", "brsf"])
@pytest.mark.parametrize("init", ["xavier_uniform", "he_normal", "kaiming_uniform"])
def test_biotorch_scale_factor(rule, init):
    model = build(rule, init, norm="biotorch")
    for group in model.groups.values():
        w = group.weight.detach()
        fan_in, fan_out = torch_fans(w)
        # BioTorch 0.0.16, layers/fa_constructor/{linear,conv}.py init_parameters
        sf = (
            math.sqrt(2.0 / (fan_in + fan_out))
            if init == "xavier_uniform"
            else 1 / math.sqrt(3 * fan_in)
        )
        b = group.effective_feedback()
        assert torch.equal(torch.sign(b), torch.sign(w))
        if rule == "usf":
            torch.testing.assert_close(b, sf * torch.sign(w))
        else:  # random magnitudes with E[M^2] = 1: rms(B) = sf
            assert float(b.pow(2).mean().sqrt()) == pytest.approx(sf, rel=0.1)


def test_biotorch_frsf_and_brsf_magnitudes_are_abs_xavier_uniform_draws():
    for rule, extra in (("frsf", {}), ("brsf", {"redraw": "forward"})):
        model = build(rule, "xavier_uniform", norm="biotorch", magnitude="uniform", **extra)
        group = model.groups["c1__to__c2"]
        w, b = group.weight.detach(), group.effective_feedback()
        a = xavier_bound(w)  # |xavier_uniform_(wb)| has support [0, a] and mean a / 2
        assert float(b.abs().max()) <= a and float(b.abs().max()) > 0.99 * a
        assert float(b.abs().mean()) == pytest.approx(a / 2, rel=0.03)
        assert torch.equal(torch.sign(b), torch.sign(w))


def test_xiao_et_al_scale():
    model = build("usf", norm="xiao")
    for group in model.groups.values():
        w = group.weight.detach()
        if w.dim() == 4:  # willwx/sign-symmetry, af_conv2d_module.py: sqrt(2 / (kh kw out))
            scale = math.sqrt(2.0 / (w.shape[2] * w.shape[3] * w.shape[0]))
        else:  # af_linear_module.py: 1 / sqrt(in_features)
            scale = 1.0 / math.sqrt(w.shape[1])
        torch.testing.assert_close(group.effective_feedback(), scale * torch.sign(w))


def test_brsf_redraw_forward_is_fresh_every_step_and_independent_of_w():
    model = build("brsf", redraw="forward")
    group = model.groups["c1__to__c2"]
    first = group.effective_feedback().clone()
    with torch.no_grad():
        group.weight.mul_(1.5)  # W changes, its signs do not: the draw must not change
    assert torch.equal(first.abs(), group.effective_feedback().abs())
    model.after_step(1, 3)  # one optimiser step: a fresh draw although W is the same
    second = group.effective_feedback()
    assert not torch.equal(first.abs(), second.abs())
    assert int(group.feedback["draws"]) == 1
    update = build("brsf")  # "when W changes": a function of W's bits
    g = update.groups["c1__to__c2"]
    before = g.effective_feedback().clone()
    update.after_step(1, 3)
    assert torch.equal(before, g.effective_feedback())


def test_brsf_redraw_forward_resumes_bit_identically(tmp_path):
    c = net("brsf", redraw="forward", norm="biotorch")
    kwargs = {"data": "digits", "batch_size": 32, "record_every": 2, "epochs": 1}
    full = fit(c, Train(**kwargs, max_steps=6), out=tmp_path / "full.nc")
    fit(c, Train(**kwargs, max_steps=3, checkpoint_every=3), out=tmp_path / "part.nc")
    resumed = fit(c, Train(**kwargs, max_steps=6, checkpoint_every=3), out=tmp_path / "part.nc",
                  resume=True)  # fmt: skip
    with xr.open_dataset(full) as a, xr.open_dataset(resumed) as b:
        for name in ("loss", "feedback_angle", "error_angle"):
            x, y = (d[name].sel(step=[2, 6]).values for d in (a, b))  # loss: window means
            assert np.array_equal(x, y, equal_nan=True), name


def test_pfa_o_is_a_square_orthogonal_b_with_xavier_r():
    model = build("product_fa", "xavier_uniform", b_init="orthogonal", expansion=1)
    group = model.groups["c1__to__c2"]
    b, r = group.feedback["B"].detach(), group.feedback["R"].detach()
    assert b.shape == (64, 64)  # expansion 1: the PFA code's expand_ratio "ortho"
    torch.testing.assert_close(b @ b.t(), torch.eye(64), atol=1e-5, rtol=0)
    assert float(r.abs().max()) <= xavier_bound(r)  # xavier_uniform_(R), R's own fans
    assert float(r.std()) == pytest.approx(xavier_bound(r) / math.sqrt(3.0), rel=0.03)


def test_pfa_random_b_has_the_reference_codes_variance():
    model = build("product_fa", "xavier_uniform")  # expansion 10, B (out, 10 out)
    b = model.groups["c1__to__c2"].feedback["B"].detach()
    n_out, n_mid = b.shape
    r = n_mid // n_out  # PFA code: xavier_uniform_(B, gain=sqrt((1 + 1/r) / 2))
    gain = math.sqrt((1 + 1 / r) / 2)
    bound = gain * math.sqrt(6.0 / (n_mid + n_out))
    assert float(b.abs().max()) <= bound and float(b.abs().max()) > 0.99 * bound


def test_dfa_under_xavier_draws_b_like_biotorch_linear_dfa():
    model = build("direct_feedback_alignment", "xavier_uniform")
    b = model.hooks["h"].feedback["B"].detach()  # (classes, |h|)
    assert float(b.abs().max()) <= math.sqrt(6.0 / (10 + 256))


def test_option_values_are_refused_with_one_line():
    for rule, options, message in (
        ("usf", {"norm": "biotorch2"}, "norm="),
        ("frsf", {"magnitude": "gauss"}, "magnitude="),
        ("brsf", {"redraw": "never"}, "redraw="),
        ("usf", {"magnitude": "uniform"}, "unknown option"),
    ):
        with pytest.raises(ValueError, match=message):
            create(rule, **options)
    with pytest.raises(ValueError, match="init="):
        Circuit("x", init="xavier")


def test_feedback_context_defaults_keep_old_constructions_working():
    ctx = FeedbackContext("g", "u", ("l",), (0,), (0,), (), 4, None)
    assert ctx.init == "he_normal" and ctx.fan_out == 0
