"""Population wiring against hand-written references (fp64): a batched compile equals each
population projection as its own op; feedback alignment's error through a masked,
population-wired circuit equals the hand product; pathways to and from a population."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from biofa import Circuit, E, I, compile, conv, dense
from biofa.circuit.wiring import spans
from biofa.measure.shadow import shadow_backward

pytestmark = pytest.mark.usefixtures("one_thread")

MASK = [[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1, 1], [1, 1, 0, 1, 1, 0]]  # v2.pv x v1.pyr


def wired(rule: str | None = None) -> Circuit:
    """img -> v1 (conv; pyr, pv) -> v2 (conv; pyr, pv local and linear, sst divisive) -> out."""
    c = Circuit("wired")
    c.input("img")
    c.area("v1", E(6, "pyr"), I(2, "pv"), pool="max")
    c.area("v2", E(5, "pyr"), I(3, "pv", nonlinearity="identity", bias=False), I(2, "sst"))
    c.readout("out")
    c.connect("img", "v1", conv(3))
    c.connect("v1.pyr", "v2.pyr", conv(3, p=0.5))
    c.connect("v1.pv", "v2.pyr", conv(3))
    c.connect("v1.pyr", "v2.pv", conv(3, mask=MASK))
    c.connect("v1", "v2.sst", conv(3))
    c.connect("v2.pv", "v2.pyr", conv(1))
    c.connect("v2.sst", "v2.pyr", conv(1), mode="divisive", shunt_gain=0.5)
    c.connect("v2.pyr", "out", dense(flatten=True))
    if rule:
        c.feedback_everywhere(rule)
    return c


def blocks(model) -> dict[str, torch.Tensor]:
    """Every projection's own weight, cut out of its group (fp64 leaves)."""
    return {
        s.projection: s.block(g.weight.detach()).clone().requires_grad_(True)
        for s, g in model.projection_slices()
    }


def by_hand(x, model, W):
    """The circuit written out projection by projection (each its own conv)."""
    a2 = model.areas["v2"]
    v1 = F.max_pool2d(F.relu(F.conv2d(x, W["img->v1"], model.areas["v1"].bias, padding=1)), 2)
    pyr1, pv1 = v1[:, :6], v1[:, 6:]
    pv = F.conv2d(pyr1, W["v1.pyr->v2.pv"], padding=1)  # linear, no bias
    sst = F.relu(F.conv2d(v1, W["v1->v2.sst"], padding=1) + a2.biases["sst"].view(1, -1, 1, 1))
    alpha = model.groups["v2:sst__to__v2:pyr"].log_gain
    gamma = -F.conv2d(sst * alpha.exp().view(1, -1, 1, 1), W["v2.sst->v2.pyr"]) + 1e-8
    a = (F.conv2d(pyr1, W["v1.pyr->v2.pyr"], padding=1)
         + F.conv2d(pv1, W["v1.pv->v2.pyr"], padding=1)
         + F.conv2d(pv, W["v2.pv->v2.pyr"]))  # fmt: skip
    pyr = F.relu(a2.gains["pyr"].abs().view(1, -1, 1, 1) * a / gamma
                 + a2.biases["pyr"].view(1, -1, 1, 1))  # fmt: skip
    return pyr.flatten(1) @ W["v2.pyr->out"].t() + model.areas["out"].bias


def test_population_groups_are_batched_with_block_masks():
    model = compile(wired(), input_shape=(1, 6, 6), num_classes=3, seed=0)
    # the three conv projections from v1 into v2 are ONE conv (rows pyr+pv+sst, columns pyr+pv)
    assert model.group_names["v2"][0] == (
        "v1:pyr__to__v2:pyr__and__v1:pv__to__v2:pyr__and__v1:pyr__to__v2:pv__and__v1__to__v2:sst"
    )
    g = model.groups[model.group_names["v2"][0]]
    assert tuple(g.weight.shape) == (10, 8, 3, 3)
    w = g.weight.detach()
    assert (w[5:8, 6:] == 0).all(), "v1.pv -> v2.pv is not connected"
    assert (w[5:8, :6] == 0).sum() == 6 * 9, "six (out, in) pairs of the mask are zero"
    frac = float((w[:5, :6] != 0).float().mean())
    assert 0.3 < frac < 0.7, "p=0.5 connects about half of v1.pyr -> v2.pyr"
    assert (w[:, :6] >= 0).all() and (w[:, 6:] <= 0).all(), "Dale's law per source population"


def test_batched_compile_equals_each_projection_as_its_own_op_fp64():
    model = compile(wired(), input_shape=(1, 6, 6), num_classes=3, seed=1).double()
    x = torch.randn(4, 1, 6, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1])
    W = blocks(model)
    out = model(x)
    torch.testing.assert_close(out, by_hand(x, model, W), rtol=0, atol=1e-10)
    F.cross_entropy(out, y).backward()
    got = {s.projection: s.block(leaf(g).grad).clone() for s, g in model.projection_slices()}
    others = {n: p.grad.clone() for n, p in model.areas.named_parameters()}
    alpha = model.groups["v2:sst__to__v2:pyr"].log_gain.grad.clone()
    model.zero_grad()
    F.cross_entropy(by_hand(x, model, W), y).backward()
    for s, g in model.projection_slices():
        # W = M s|V|: dL/dV = M s sign(V) dL/dW on the block; masked synapses get none
        w, v = s.block(g.weight.detach()), s.block(leaf(g).detach())
        unconstrained = not hasattr(g, "parametrizations")
        ref = W[s.projection].grad * (1.0 if unconstrained else torch.sign(w) * torch.sign(v))
        torch.testing.assert_close(got[s.projection], ref, rtol=0, atol=1e-8, msg=s.projection)
    for n, p in model.areas.named_parameters():
        torch.testing.assert_close(others[n], p.grad, rtol=0, atol=1e-8, msg=n)
    torch.testing.assert_close(alpha, model.groups["v2:sst__to__v2:pyr"].log_gain.grad)


def leaf(group):
    """The tensor the optimiser updates for a group's weight."""
    if hasattr(group, "parametrizations"):
        return group.parametrizations.weight.original
    return group.weight


def mlp(feedback) -> Circuit:
    c = Circuit("mlp")
    c.input("img")
    c.area("h1", E(6, "pyr"), I(3, "pv"), nonlinearity="tanh")
    c.area("h2", E(5, "pyr"), I(4, "pv"), nonlinearity="tanh")
    c.readout("out")
    c.connect("img", "h1", dense(flatten=True))
    c.connect("h1.pyr", "h2.pyr", dense(p=0.4))
    c.connect("h1.pv", "h2.pyr", dense())
    c.connect("h1.pyr", "h2.pv", dense(mask=[[1, 0, 1, 0, 1, 0]] * 2 + [[0, 1, 1, 1, 0, 1]] * 2))
    c.connect("h2", "out", dense())
    feedback(c)
    return c


def test_feedback_alignment_error_through_masked_population_wiring_is_the_hand_product():
    c = mlp(lambda c: c.feedback_everywhere("feedback_alignment"))
    model = compile(c, input_shape=(1, 3, 3), num_classes=3, seed=2).double()
    x = torch.randn(7, 1, 3, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1, 0, 2, 2])
    rule, _ = shadow_backward(model, x, y)
    g2 = model.groups["h1:pyr__to__h2:pyr__and__h1:pv__to__h2:pyr__and__h1:pyr__to__h2:pv"]
    gout = model.groups["h2__to__out"]
    b2 = g2.feedback["B"].detach()
    m2 = g2.feedback_mask
    assert m2 is not None and (m2[:5, :6] == 0).any() and (m2[5:, 6:] == 0).all()
    with torch.no_grad():  # forward and FA backward by hand
        h1 = torch.tanh(
            x.flatten(1) @ model.groups["img__to__h1"].weight.t() + model.areas["h1"].bias
        )
        b = model.areas["h2"].biases  # h2 is computed population by population
        pre2 = h1 @ g2.weight.t() + torch.cat([b["pyr"], b["pv"]])
        h2 = torch.tanh(pre2)
        logits = h2 @ gout.weight.t() + model.areas["out"].bias
        e = (torch.softmax(logits, 1) - F.one_hot(y, 3)) / len(y)
        d2 = (e @ gout.feedback["B"]) * (1 - h2**2)
        d1 = d2 @ (b2 * m2)  # the masked, block-structured B: one product, blocks and all
        by_block = torch.zeros_like(d1)  # the same, projection by projection
        by_block[:, :6] += d2[:, :5] @ (b2[:5, :6] * m2[:5, :6])
        by_block[:, 6:] += d2[:, :5] @ b2[:5, 6:]
        by_block[:, :6] += d2[:, 5:] @ (b2[5:, :6] * m2[5:, :6])
    torch.testing.assert_close(rule.errors["h1"], d1, rtol=0, atol=1e-12)
    torch.testing.assert_close(d1, by_block, rtol=0, atol=1e-12)


def test_a_pathway_to_a_population_sends_the_error_to_it_alone():
    c = Circuit("apical")
    c.input("img")
    c.area("h1", E(6, "pyr"), I(3, "pv"), nonlinearity="tanh")
    c.readout("out")
    c.connect("img", "h1", dense(flatten=True))
    c.area("h2", E(5), I(2))
    c.connect("h1", "h2", dense())  # all to all
    c.connect("h2", "out", dense())
    c.feedback("h2", "h1.pyr", rule="feedback_alignment")  # apical: pyramidal cells only
    c.feedback("out", "h2", rule="feedback_alignment")
    model = compile(c, input_shape=(1, 3, 3), num_classes=3, seed=3).double()
    assert model.groups["h1__to__h2"].feedback_mask[:, 6:].abs().max() == 0
    x, y = torch.randn(6, 1, 3, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    rule, exact = shadow_backward(model, x, y)
    assert rule.errors["h1"][:, 6:].abs().max() == 0, "h1.pv receives no error"
    assert rule.errors["h1"][:, :6].abs().max() > 0
    assert exact.errors["h1"][:, 6:].abs().max() > 0, "(backprop would send it some)"
    # the weights out of h1.pv still learn: their update is local (error at h2 times h1.pv)
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    assert leaf(model.groups["h1__to__h2"]).grad[:, 6:].abs().max() > 0
    assert leaf(model.groups["img__to__h1"]).grad[6:].abs().max() == 0, "nothing reached h1.pv"


def test_direct_feedback_to_a_population():
    def feedback(c):
        c.feedback("out", "h1.pyr", rule="direct_feedback_alignment")
        c.feedback_everywhere("feedback_alignment")

    model = compile(mlp(feedback), input_shape=(1, 3, 3), num_classes=3, seed=4).double()
    x, y = torch.randn(5, 1, 3, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
    rule, _ = shadow_backward(model, x, y)
    hook = model.hooks["h1:pyr"]
    with torch.no_grad():
        logits = model(x)
        e = (torch.softmax(logits, 1) - F.one_hot(y, 3)) / len(y)
    torch.testing.assert_close(rule.errors["h1"][:, :6], e @ hook.feedback["B"], rtol=0, atol=1e-12)
    assert rule.errors["h1"][:, 6:].abs().max() > 0, "h1.pv gets its error layer-wise"


def test_population_spans_and_stages():
    c = wired()
    assert {n: (s.start, s.stop) for n, s in spans(c.areas["v2"]).items()} == {
        "pyr": (0, 5),
        "pv": (5, 8),
        "sst": (8, 10),
    }
    from biofa.circuit.wiring import stages

    assert stages(c, "v2") == [("pv", "sst"), ("pyr",)]
    assert stages(c, "v1") == [("pyr", "pv")]
