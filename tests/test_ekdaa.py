"""ekdaa (error kernels + target differences) against the paper's equations written out by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from biofa import Circuit, E, I, Units, compile, conv, dense
from biofa.measure.shadow import shadow_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_cnn(v1, **options) -> Circuit:
    """img -> v1 (tanh, conv 3x3) -> v2 (signum, conv 3x3 stride 2, max pool) -> out."""
    c = Circuit("tiny")
    c.input("img")
    c.area("v1", *v1, nonlinearity="tanh")
    c.area("v2", Units(4), nonlinearity="sign", pool="max")
    c.readout("out")
    c.connect("img", "v1", conv(3))
    c.connect("v1", "v2", conv(3, stride=2, padding=1))
    c.connect("v2", "out", dense(flatten=True))
    c.feedback_everywhere("ekdaa", **options)
    return c


def check_weight_grad(group, dw):
    if hasattr(group, "parametrizations"):
        v = group.parametrizations.weight.original
        s = group.parametrizations.weight[0].sign.to(dw.dtype)
        torch.testing.assert_close(v.grad, dw * s * torch.sign(v.detach()))
    else:
        torch.testing.assert_close(group.weight.grad, dw)


@pytest.mark.parametrize("v1", [(Units(3),), (E(3), I(1))], ids=["units", "ei"])
def test_one_ekdaa_step_matches_the_papers_equations(v1):
    beta, gamma, n = 4.0, 0.3, 5
    model = compile(
        tiny_cnn(v1, beta=beta, gamma=gamma), input_shape=(1, 8, 8), num_classes=3, seed=0
    ).double()
    g, a = model.groups, model.areas
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1, 0])
    F.cross_entropy(model(x), y).backward()
    w1, w2, w3 = (g[k].weight.detach() for k in ("img__to__v1", "v1__to__v2", "v2__to__out"))
    e2_, e3_ = g["v1__to__v2"].feedback["E"].detach(), g["v2__to__out"].feedback["E"].detach()
    with torch.no_grad():  # per-example errors, as in the paper
        h1 = F.conv2d(x, w1, a["v1"].bias, 1, 1)
        z1 = torch.tanh(h1)
        h2 = F.conv2d(z1, w2, a["v2"].bias, 2, 1)
        z2 = torch.sign(h2)
        p2, idx = F.max_pool2d(z2, 2, return_indices=True)
        z_out = torch.softmax(p2.flatten(1) @ w3.t() + a["out"].bias, 1)
        e_out = z_out - F.one_hot(y, 3).double()  # e_L = z_L - y
        d2 = F.max_unpool2d((e_out @ e3_).view_as(p2), idx, 2, output_size=h2.shape[2:])
        e2 = torch.sign(h2) - torch.sign(h2 - beta * d2)  # e = phi(h) - phi(h - beta d)
        d1 = torch.nn.grad.conv2d_input(z1.shape, e2_, e2, 2, 1)  # error map through E
        e1 = torch.tanh(h1) - torch.tanh(h1 - beta * d1)
        dw3 = e_out.t() @ p2.flatten(1)
        dw2 = torch.nn.grad.conv2d_weight(z1, w2.shape, e2, 2, 1)
        dw1 = torch.nn.grad.conv2d_weight(x, w1.shape, e1, 1, 1)
    assert (e2 != 0).any() and (e2 == 0).any()  # some signum units flip, most do not
    for key, dw in (("img__to__v1", dw1), ("v1__to__v2", dw2), ("v2__to__out", dw3)):
        check_weight_grad(g[key], dw / n)  # biofa's loss is the batch mean
        torch.testing.assert_close(g[key].feedback["E"].grad, gamma * dw / n)  # Delta E = g Delta W
    torch.testing.assert_close(a["v2"].bias.grad, e2.sum((0, 2, 3)) / n)
    torch.testing.assert_close(a["v1"].bias.grad, e1.sum((0, 2, 3)) / n)


def test_ekdaa_needs_every_outgoing_projection_of_an_area_to_agree():
    c = Circuit("mixed")
    c.input("img")
    c.area("h", Units(4))
    c.area("k", Units(4))
    c.readout("out")
    c.connect("img", "h", dense(flatten=True))
    c.connect("h", "k", dense())
    c.connect("h", "out", dense())
    c.connect("k", "out", dense())
    c.feedback("k", "h", rule="ekdaa")
    c.feedback_everywhere("feedback_alignment")
    with pytest.raises(ValueError, match="area 'h'"):
        compile(c, input_shape=(1, 2, 2), num_classes=3)


def test_signum_area_is_untrainable_by_derivatives_but_shadow_backprop_still_works():
    model = compile(tiny_cnn((Units(3),)), input_shape=(1, 8, 8), num_classes=3, seed=1)
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    metrics = shadow_metrics(model, x, y)  # the reference pass uses derivatives (sign' = 0)
    assert set(metrics) >= {"error_angle", "update_angle"}
    F.cross_entropy(model(x), y).backward()
    assert model.groups["img__to__v1"].weight.grad.abs().sum() > 0  # EKDAA reaches below signum
    bp = Circuit("bp")
    bp.input("img")
    bp.area("v1", Units(3), nonlinearity="sign")
    bp.readout("out")
    bp.connect("img", "v1", dense(flatten=True))
    bp.connect("v1", "out", dense())
    net = compile(bp, input_shape=(1, 8, 8), num_classes=3)
    F.cross_entropy(net(x), y).backward()
    assert net.groups["img__to__v1"].weight.grad.abs().sum() == 0
