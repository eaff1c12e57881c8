"""product_fa (PFA) against a hand-written intermediate population on tiny tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from small_circuits import two_hidden_mlp

from biofa import Circuit, E, I, Units, compile, conv, dense
from biofa.measure.metrics import angle
from biofa.measure.probes import projection_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def mlp(hidden, **options) -> Circuit:
    return two_hidden_mlp("product_fa", hidden, **options)


HIDDEN = {"units": ((Units(6),), (Units(5),)), "ei": ((E(5), I(2)), (E(4), I(1)))}


def r_of(group):
    """R as the rule uses it (s|V| for an E/I intermediate population)."""
    fb = group.feedback
    if "r_sign" in fb:
        return fb["R"].abs() * fb["r_sign"].view(-1, *([1] * (fb["R"].dim() - 1)))
    return fb["R"]


def forward_by_hand(model, x):
    g = model.groups
    a1 = x.flatten(1) @ g["img__to__h1"].weight.t() + model.areas["h1"].bias
    h1 = F.relu(a1)
    a2 = h1 @ g["h1__to__h2"].weight.t() + model.areas["h2"].bias
    h2 = F.relu(a2)
    return a1, h1, a2, h2, h2 @ g["h2__to__out"].weight.t() + model.areas["out"].bias


@pytest.mark.parametrize("kind", ["units", "ei"])
@pytest.mark.parametrize("intermediate", ["Units", "EI"])
@pytest.mark.parametrize("batch", [2, 40])  # small batch: B then R in sequence; large: product
def test_pfa_errors_and_updates_go_through_the_intermediate_population(kind, intermediate, batch):
    model = compile(
        mlp(HIDDEN[kind], expansion=3, intermediate=intermediate),
        input_shape=(1, 4, 4),
        num_classes=3,
        seed=0,
    ).double()
    g = model.groups
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, 4, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (batch,), generator=gen)
    F.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        a1, h1, a2, h2, logits = forward_by_hand(model, x)
        e = (torch.softmax(logits, 1) - F.one_hot(y, 3).double()) / batch
        b3, r3 = g["h2__to__out"].feedback["B"], r_of(g["h2__to__out"])
        b2, r2 = g["h1__to__h2"].feedback["B"], r_of(g["h1__to__h2"])
        assert b3.shape == (3, 9) and r3.shape == (9, h2.shape[1])  # K = 3 x out
        r_err3 = e @ b3  # the intermediate population's error, B^T delta
        d2 = (r_err3 @ r3) * (a2 > 0)
        r_err2 = d2 @ b2
        d1 = (r_err2 @ r2) * (a1 > 0)
        grad_r3, grad_r2 = r_err3.t() @ h2, r_err2.t() @ h1  # Delta R = (B^T delta) x^T
    check_weight_grad(g["img__to__h1"], d1.t() @ x.flatten(1))
    check_weight_grad(g["h1__to__h2"], d2.t() @ h1)
    check_weight_grad(g["h2__to__out"], e.t() @ h2)
    for group, want in ((g["h2__to__out"], grad_r3), (g["h1__to__h2"], grad_r2)):
        got = group.feedback["R"].grad
        if intermediate == "EI":  # R = s|V|: dL/dV = s sign(V) dL/dR
            sign = group.feedback["r_sign"].view(-1, 1)
            want = want * sign * torch.sign(group.feedback["R"].detach())
            assert (r_of(group)[sign.view(-1) > 0] >= 0).all()
            assert (r_of(group)[sign.view(-1) < 0] <= 0).all()
        torch.testing.assert_close(got, want)
        assert group.feedback["B"].grad is None and not group.feedback["B"].requires_grad


def check_weight_grad(group, dw):
    """``W``'s gradient is ``dw`` (through ``W = s|V|`` under Dale's law: ``s sign(V) dw``)."""
    if hasattr(group, "parametrizations"):
        v = group.parametrizations.weight.original
        s = group.parametrizations.weight[0].sign.to(dw.dtype)
        torch.testing.assert_close(v.grad, dw * s * torch.sign(v.detach()))
    else:
        torch.testing.assert_close(group.weight.grad, dw)


def test_pfa_effective_feedback_is_the_product_and_probes_report_it():
    model = compile(mlp(HIDDEN["ei"], expansion=2), input_shape=(1, 3, 3), num_classes=4, seed=5)
    group = model.groups["h1__to__h2"]
    b, r = group.feedback["B"].detach(), group.feedback["R"].detach()
    by_hand = torch.einsum("om,mi->oi", b, r)
    torch.testing.assert_close(group.effective_feedback(), by_hand)
    probes = projection_metrics(model)
    w = group.weight.detach()
    torch.testing.assert_close(probes["feedback_angle"]["h1->h2"], angle(w, by_hand))
    torch.testing.assert_close(probes["pfa_b_norm"]["h1->h2"], b.double().norm())
    torch.testing.assert_close(probes["pfa_r_norm"]["h1->h2"], r.double().norm())
    assert "img->h1" not in probes["pfa_r_norm"]  # no error is sent to the input


def test_pfa_conv_uses_b_as_a_1x1_kernel_and_r_as_a_conv_kernel():
    c = Circuit("cnn")
    c.input("img")
    c.area("v1", Units(3))
    c.area("v2", E(3), I(1), pool="global_avg")
    c.readout("out")
    c.connect("img", "v1", conv(3))
    c.connect("v1", "v2", conv(3, stride=2, padding=1))
    c.connect("v2", "out", dense())
    c.feedback_everywhere("product_fa", expansion=2)
    model = compile(c, input_shape=(2, 7, 7), num_classes=3, seed=1).double()
    x, y = torch.randn(4, 2, 7, 7, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    g, a = model.groups, model.areas
    v1 = F.relu(F.conv2d(x, g["img__to__v1"].weight, a["v1"].bias, 1, 1)).requires_grad_(True)
    a2 = F.conv2d(v1, g["v1__to__v2"].weight, a["v2"].bias, 2, 1)
    a2.retain_grad()
    logits = F.relu(a2).mean((2, 3)) @ g["v2__to__out"].weight.t() + a["out"].bias
    F.cross_entropy(model(x), y).backward()
    b, r = g["v1__to__v2"].feedback["B"], g["v1__to__v2"].feedback["R"]
    assert b.shape == (4, 8) and r.shape == (8, 3, 3, 3)
    with torch.no_grad():
        e = (torch.softmax(logits, 1) - F.one_hot(y, 3).double()) / 4
        r_err = e @ g["v2__to__out"].feedback["B"]
        d2 = (
            (r_err @ g["v2__to__out"].feedback["R"])[:, :, None, None].expand_as(a2)
            / a2[0, 0].numel()
        ) * (a2 > 0)
        mid = torch.einsum("nohw,om->nmhw", d2, b)  # the intermediate population's error maps
        want_r = torch.nn.grad.conv2d_weight(v1, r.shape, mid, 2, 1)
        dv1 = torch.nn.grad.conv2d_input(v1.shape, r, mid, 2, 1)  # then through R
        want_w1 = torch.nn.grad.conv2d_weight(
            x, g["img__to__v1"].weight.shape, dv1 * (v1 > 0), 1, 1
        )
    torch.testing.assert_close(r.grad, want_r)
    torch.testing.assert_close(g["img__to__v1"].weight.grad, want_w1)


def test_pfa_options():
    ortho = (
        compile(mlp(HIDDEN["units"], b_init="orthogonal"), input_shape=(1, 3, 3), num_classes=4)
        .groups["h1__to__h2"]
        .feedback["B"]
    )
    torch.testing.assert_close(ortho @ ortho.t(), torch.eye(5))
    ident = (
        compile(mlp(HIDDEN["units"], b_init="identity"), input_shape=(1, 3, 3), num_classes=4)
        .groups["h1__to__h2"]
        .feedback["B"]
    )
    torch.testing.assert_close(ident, torch.eye(5))
    sized = (
        compile(mlp(HIDDEN["units"], size=7), input_shape=(1, 3, 3), num_classes=4)
        .groups["h1__to__h2"]
        .feedback["R"]
    )
    assert sized.shape == (7, 6)
    with pytest.raises(ValueError, match="intermediate"):
        compile(mlp(HIDDEN["units"], intermediate="X"), input_shape=(1, 3, 3), num_classes=4)


def test_pfa_error_through_applies_b_then_r_only_when_cheaper():
    from biofa.kinds import DenseOp

    group = compile(
        mlp(HIDDEN["units"], expansion=4), input_shape=(1, 4, 4), num_classes=3, seed=2
    ).groups["h1__to__h2"]  # out 5, in 6, K 20
    fb, w = dict(group.feedback), group.weight.detach()
    small, large = torch.randn(2, 5), torch.randn(64, 5)
    seq = group.rule.error_through(small, w, fb, DenseOp(), (2, 6))
    assert seq is not None  # 2 * 20 * (5 + 6) < 5 * 20 * 6
    torch.testing.assert_close(seq, small @ group.effective_feedback())
    assert group.rule.error_through(large, w, fb, DenseOp(), (64, 6)) is None
