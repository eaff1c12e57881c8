"""feedback_alignment and direct_feedback_alignment against hand-computed error products."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from small_circuits import two_hidden_mlp

from biofa import Circuit, E, I, Units, compile, conv, dense


def mlp(rule: str, hidden=((Units(6),), (Units(5),))) -> Circuit:
    return two_hidden_mlp(rule, hidden)


def forward_by_hand(model, x):
    g = model.groups
    a1 = x.flatten(1) @ g["img__to__h1"].weight.t() + model.areas["h1"].bias
    h1 = F.relu(a1)
    a2 = h1 @ g["h1__to__h2"].weight.t() + model.areas["h2"].bias
    h2 = F.relu(a2)
    logits = h2 @ g["h2__to__out"].weight.t() + model.areas["out"].bias
    return a1, h1, a2, h2, logits


def softmax_error(logits, y):
    return (torch.softmax(logits, 1) - F.one_hot(y, logits.shape[1]).to(logits.dtype)) / len(y)


def test_feedback_alignment_errors_and_updates_are_the_hand_products():
    torch.manual_seed(0)
    model = compile(
        mlp("feedback_alignment", ((E(5), I(2)), (Units(5),))),
        input_shape=(1, 3, 3),
        num_classes=4,
        seed=0,
    ).double()
    x, y = torch.randn(8, 1, 3, 3, dtype=torch.float64), torch.randint(0, 4, (8,))
    F.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        a1, h1, a2, h2, logits = forward_by_hand(model, x)
        g = model.groups
        e = softmax_error(logits, y)
        d2 = (e @ g["h2__to__out"].feedback["B"]) * (a2 > 0)  # B in place of W
        d1 = (d2 @ g["h1__to__h2"].feedback["B"]) * (a1 > 0)
        # the fixed B really differs from W, so this is not backprop in disguise
        assert not torch.allclose(g["h1__to__h2"].feedback["B"], g["h1__to__h2"].weight)
    torch.testing.assert_close(model.groups["img__to__h1"].weight.grad, d1.t() @ x.flatten(1))
    dw12 = (
        d2.t() @ h1
    )  # the local outer product, through the Dale parametrisation dW/dV = s sign(V)
    v12 = model.groups["h1__to__h2"].parametrizations.weight.original
    sign = torch.tensor([1.0] * 5 + [-1.0] * 2, dtype=torch.float64)
    torch.testing.assert_close(v12.grad, dw12 * sign * torch.sign(v12.detach()))
    torch.testing.assert_close(model.areas["h1"].bias.grad, d1.sum(0))
    # fixed feedback never gets a gradient
    assert all(p.grad is None for p in model.feedback_parameters())


def test_feedback_alignment_conv_error_is_transposed_conv_with_b():
    c = Circuit("cnn")
    c.input("img")
    c.area("v1", Units(3))
    c.area("v2", Units(4), pool="global_avg")
    c.readout("out")
    c.connect("img", "v1", conv(3))
    c.connect("v1", "v2", conv(3, stride=2, padding=1))
    c.connect("v2", "out", dense())
    c.feedback_everywhere("feedback_alignment")
    model = compile(c, input_shape=(2, 7, 7), num_classes=3, seed=1).double()
    x, y = torch.randn(4, 2, 7, 7, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    F.cross_entropy(model(x), y).backward()
    g, a = model.groups, model.areas
    with torch.no_grad():
        a1 = F.conv2d(x, g["img__to__v1"].weight, a["v1"].bias, 1, 1)
        v1 = F.relu(a1)
        a2 = F.conv2d(v1, g["v1__to__v2"].weight, a["v2"].bias, 2, 1)
        v2 = F.relu(a2).mean((2, 3))
        logits = v2 @ g["v2__to__out"].weight.t() + a["out"].bias
        e = softmax_error(logits, y)
        dv2 = (e @ g["v2__to__out"].feedback["B"])[:, :, None, None].expand_as(a2) / a2[
            0, 0
        ].numel()
        d2 = dv2 * (a2 > 0)
        dv1 = torch.nn.grad.conv2d_input(v1.shape, g["v1__to__v2"].feedback["B"], d2, 2, 1)
        d1 = dv1 * (a1 > 0)
        w2 = torch.nn.grad.conv2d_weight(v1, g["v1__to__v2"].weight.shape, d2, 2, 1)
        w1 = torch.nn.grad.conv2d_weight(x, g["img__to__v1"].weight.shape, d1, 1, 1)
    torch.testing.assert_close(g["v1__to__v2"].weight.grad, w2)
    torch.testing.assert_close(g["img__to__v1"].weight.grad, w1)


def test_direct_feedback_alignment_delivers_e_times_b_to_every_area():
    model = compile(
        mlp("direct_feedback_alignment"), input_shape=(1, 3, 3), num_classes=4, seed=2
    ).double()
    x, y = torch.randn(8, 1, 3, 3, dtype=torch.float64), torch.randint(0, 4, (8,))
    F.cross_entropy(model(x), y).backward()
    g = model.groups
    with torch.no_grad():
        a1, h1, a2, h2, logits = forward_by_hand(model, x)
        e = softmax_error(logits, y)
        d2 = (e @ model.hooks["h2"].feedback["B"]) * (a2 > 0)
        d1 = (e @ model.hooks["h1"].feedback["B"]) * (a1 > 0)
    torch.testing.assert_close(g["h2__to__out"].weight.grad, e.t() @ h2)
    torch.testing.assert_close(g["h1__to__h2"].weight.grad, d2.t() @ h1)
    torch.testing.assert_close(g["img__to__h1"].weight.grad, d1.t() @ x.flatten(1))
    # the projections out of tapped areas do not even compute the error they would send back
    assert not g["h1__to__h2"].send_error and not g["h2__to__out"].send_error


def test_backprop_rule_feedback_is_the_weight():
    model = compile(mlp("backprop"), input_shape=(1, 3, 3), num_classes=4)
    for group in model.groups.values():
        assert group.effective_feedback() is not None
        torch.testing.assert_close(group.effective_feedback(), group.weight)
