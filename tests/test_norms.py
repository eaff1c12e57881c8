"""Moskovitz et al.'s normalisation controls against hand computations (fp64): the rule options
norm="init"/"sn" and, in biofa.nn.norms, held forward-weight norms ("Const.") and per-projection
gradient normalisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from biofa import Circuit, E, I, Units, compile, conv, dense
from biofa.nn.constraints import DaleSign
from biofa.nn.norms import FixedNorm, hold_weight_norms, normalize_gradients


def cnn(rule: str | None = None, **options) -> Circuit:
    """v2 receives two projections (v1->v2, img->v2) batched into one kernel."""
    c = Circuit("cnn")
    c.input("img")
    c.area("v1", E(3), I(2))
    c.area("v2", E(4), I(2), pool="global_avg")
    c.area("h", Units(5))
    c.readout("out")
    c.connect("img", "v1", conv(3))
    c.connect("v1", "v2", conv(3, stride=2, padding=1))
    c.connect("img", "v2", conv(3, stride=2, padding=1))
    c.connect("v2", "h", dense())
    c.connect("h", "out", dense())
    if rule is not None:
        c.feedback_everywhere(rule, **options)
    return c


def build(rule=None, seed=0, **options):
    return compile(cnn(rule, **options), input_shape=(2, 7, 7), num_classes=3, seed=seed).double()


def sgd_steps(model, steps: int, lr: float, seed: int = 0, hook=None):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        x = torch.randn(8, 2, 7, 7, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (8,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        if hook is not None:
            hook()
        opt.step()


def slices(model):
    """``(projection, group, W_p)`` for every weighted projection."""
    return [
        (s.projection, g, g.weight.detach()[:, s.start : s.stop])
        for s, g in model.projection_slices()
    ]


def feedback_slice(group, projection):
    s = next(s for s in group.slices if s.projection == projection)
    return group.effective_feedback()[:, s.start : s.stop]


# -- rule-side: norm="init" and norm="sn" ---------------------------------------------------------
@pytest.mark.parametrize("rule", ["usf", "frsf"])
def test_init_norm_scales_by_the_initial_rms_per_projection(rule):
    model = build(rule, norm="init", scale=2.0)
    rms0 = {p: float(w.norm() / math.sqrt(w.numel())) for p, _, w in slices(model)}
    # two projections batched in one group get different scales (their own W_p(0))
    assert abs(rms0["v1->v2"] - rms0["img->v2"]) > 1e-3

    def check():
        for p, group, w in slices(model):
            m = 1.0
            if rule == "frsf":
                s = next(s for s in group.slices if s.projection == p)
                m = group.feedback["magnitude"].detach()[:, s.start : s.stop]
            torch.testing.assert_close(feedback_slice(group, p), 2.0 * rms0[p] * torch.sign(w) * m)

    check()
    if rule == "usf":  # ||B_p|| = scale * ||W_p(0)|| exactly at init
        for p, group, w in slices(model):
            torch.testing.assert_close(feedback_slice(group, p).norm(), 2.0 * w.norm())
    sgd_steps(model, 5, lr=0.5)
    check()  # the scale stays the initial one while W moves


@pytest.mark.parametrize("rule", ["usf", "brsf", "frsf"])
def test_sn_norm_matches_the_forward_norm_per_projection_at_every_step(rule):
    model = build(rule, norm="sn")

    def check():
        for p, group, w in slices(model):
            b = feedback_slice(group, p)
            torch.testing.assert_close(b.norm(), w.norm())
            assert torch.equal(torch.sign(b), torch.sign(w))
            if rule == "usf":  # by hand: ||W_p|| sign(W_p) / sqrt(n_p)
                torch.testing.assert_close(b, w.norm() * torch.sign(w) / math.sqrt(w.numel()))

    check()
    sgd_steps(model, 5, lr=0.5, hook=check)
    check()


def test_sn_feedback_is_what_the_backward_uses():
    c = Circuit("mlp")
    c.input("img")
    c.area("h", Units(6))
    c.readout("out")
    c.connect("img", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    c.feedback_everywhere("usf", norm="sn")
    model = compile(c, input_shape=(1, 2, 2), num_classes=3, seed=0).double()
    x, y = torch.randn(5, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
    F.cross_entropy(model(x), y).backward()
    g, a = model.groups, model.areas
    with torch.no_grad():
        w_out = g["h__to__out"].weight
        a1 = x.flatten(1) @ g["img__to__h"].weight.t() + a["h"].bias
        logits = F.relu(a1) @ w_out.t() + a["out"].bias
        e = (torch.softmax(logits, 1) - F.one_hot(y, 3).double()) / 5
        b = w_out.norm() * torch.sign(w_out) / math.sqrt(w_out.numel())
        d1 = (e @ b) * (a1 > 0)
    torch.testing.assert_close(g["img__to__h"].weight.grad, d1.t() @ x.flatten(1))


# -- training-side: Const. ------------------------------------------------------------------------
def test_held_weight_norms_stay_at_their_initial_values_and_keep_dale_signs():
    model = build("usf", norm="sn")
    norms0 = {p: w.norm().clone() for p, _, w in slices(model)}
    hold_weight_norms(model)
    for p, _, w in slices(model):  # registering changes nothing
        torch.testing.assert_close(w.norm(), norms0[p])
    group = model.groups["v1__to__v2__and__img__to__v2"]
    chain = list(group.parametrizations.weight)
    assert [type(m) for m in chain] == [DaleSign, FixedNorm]  # Dale first, then the rescaling
    sgd_steps(model, 10, lr=2.0)
    for p, _, w in slices(model):
        torch.testing.assert_close(w.norm(), norms0[p])
    # by hand: W_p = ||W_p(0)|| U_p / ||U_p||, U = s |V| on signed columns, V on free ones
    v = group.parametrizations.weight.original.detach()
    s = torch.tensor([1.0] * 3 + [-1.0] * 2 + [0.0] * 2, dtype=torch.float64).view(1, -1, 1, 1)
    u = torch.where(s != 0, s * v.abs(), v)
    expected = torch.cat(
        [
            norms0["v1->v2"] * u[:, :5] / u[:, :5].norm(),
            norms0["img->v2"] * u[:, 5:] / u[:, 5:].norm(),
        ],
        dim=1,
    )
    torch.testing.assert_close(group.weight.detach(), expected)
    assert (group.weight[:, :3] >= 0).all() and (group.weight[:, 3:5] <= 0).all()


def test_held_weight_norms_survive_a_checkpoint_and_refuse_a_second_call():
    a = build("frsf")
    hold_weight_norms(a)
    targets = {k: v for k, v in a.state_dict().items() if k.endswith(".target")}
    assert len(targets) == len(a.groups)
    sgd_steps(a, 3, lr=1.0)
    b = build("frsf", seed=9)  # other initial norms ...
    hold_weight_norms(b)
    b.load_state_dict(a.state_dict())  # ... replaced by the checkpoint's
    for name, group in a.groups.items():
        torch.testing.assert_close(b.groups[name].weight, group.weight)
    with pytest.raises(ValueError, match="already"):
        hold_weight_norms(a)


# -- training-side: gradient normalisation --------------------------------------------------------
def test_normalize_gradients_gives_each_projection_and_bias_a_unit_gradient():
    model = build("usf", norm="sn")
    x, y = torch.randn(8, 2, 7, 7, dtype=torch.float64), torch.randint(0, 3, (8,))
    F.cross_entropy(model(x), y).backward()
    leaves = {}
    for s, g in model.projection_slices():
        leaf = g.parametrizations.weight.original if hasattr(g, "parametrizations") else g.weight
        leaves[s.projection] = (leaf, leaf.grad[:, s.start : s.stop].clone())
    bias_grad = model.areas["h"].bias.grad.clone()
    normalize_gradients(model)
    for s, _ in model.projection_slices():
        leaf, before = leaves[s.projection]
        after = leaf.grad[:, s.start : s.stop]
        torch.testing.assert_close(after, before / before.norm())
    # every other forward parameter is normalised as one tensor; feedback tensors have no grad
    torch.testing.assert_close(model.areas["h"].bias.grad, bias_grad / bias_grad.norm())
