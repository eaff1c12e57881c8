"""kolen_pollack and weight_mirror against hand-derived dynamics (no training loop)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from biofa import Circuit, E, I, Train, Units, compile, dense
from biofa.measure.metrics import angle
from biofa.nn.seeds import derive_seed
from biofa.rules.weight_mirror import mirror_step
from biofa.train import build_optimizers

HIDDEN = {"units": (Units(6),), "ei": (E(5), I(2))}


pytestmark = pytest.mark.usefixtures("one_thread")


def linear_net(rule: str, hidden, **options) -> Circuit:
    """img -> h (identity) -> out: a fixed linear problem."""
    c = Circuit("lin")
    c.input("img")
    c.area("h", *hidden, nonlinearity="identity")
    c.readout("out")
    c.connect("img", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    c.feedback_everywhere(rule, **options)
    return c


def free_weight(group):
    """The optimised tensor behind ``group.weight`` (``V`` under Dale's law)."""
    if hasattr(group, "parametrizations"):
        return group.parametrizations.weight.original
    return group.weight


@pytest.mark.parametrize("kind", ["units", "ei"])
def test_kolen_pollack_difference_shrinks_by_one_minus_lr_decay(kind):
    model = compile(
        linear_net("kolen_pollack", HIDDEN[kind]), input_shape=(1, 3, 3), num_classes=4, seed=0
    ).double()
    eta, lam = 0.05, 0.2
    opts = build_optimizers(model, Train(optimizer="sgd", lr=eta, momentum=0.0, weight_decay=lam))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 3, 3, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (16,), generator=gen)
    group = model.groups["h__to__out"]
    rule = group.rule
    for _ in range(40):
        fb = dict(group.feedback)
        w0 = group.weight.detach().clone()
        b0 = rule.effective_feedback(w0, fb).detach().clone()
        v0, u0 = free_weight(group).detach().clone(), group.feedback["B"].detach().clone()
        for o in opts:
            o.zero_grad()
        F.cross_entropy(model(x), y).backward()
        # Kolen-Pollack: B's pseudo-gradient is W's own gradient (through B = s|U| under Dale)
        if kind == "units":
            torch.testing.assert_close(group.feedback["B"].grad, group.weight.grad)
        for o in opts:
            o.step()
        w1 = group.weight.detach()
        b1 = rule.effective_feedback(w1, dict(group.feedback)).detach()
        d0, d1 = w0 - b0, w1 - b1
        # where neither W's free parameter nor B's crossed zero, the update is exactly linear
        kept = (torch.sign(free_weight(group).detach()) == torch.sign(v0)) & (
            torch.sign(group.feedback["B"].detach()) == torch.sign(u0)
        )
        torch.testing.assert_close(d1[kept], (1 - eta * lam) * d0[kept], rtol=0, atol=1e-12)
        # and the whole difference shrinks at least that fast (|.| is 1-Lipschitz)
        assert d1.norm() <= (1 - eta * lam) * d0.norm() + 1e-12
    assert kind == "units" or "b_sign" in group.feedback


def test_kolen_pollack_forward_signs_follow_dale_columns():
    model = compile(
        linear_net("kolen_pollack", HIDDEN["ei"]), input_shape=(1, 3, 3), num_classes=4, seed=1
    )
    group = model.groups["h__to__out"]
    b = group.effective_feedback()
    assert (b[:, :5] >= 0).all() and (b[:, 5:] <= 0).all()
    free = compile(
        linear_net("kolen_pollack", HIDDEN["ei"], signs="free"),
        input_shape=(1, 3, 3),
        num_classes=4,
        seed=1,
    ).groups["h__to__out"]
    assert "b_sign" not in free.feedback and (free.effective_feedback() < 0).any()


@pytest.mark.parametrize("kind", ["units", "ei"])
def test_weight_mirror_phase_aligns_b_with_w_on_one_projection(kind):
    model = compile(
        linear_net("weight_mirror", HIDDEN[kind]), input_shape=(1, 6, 6), num_classes=5, seed=3
    )
    group = model.groups["h__to__out"]
    w = group.weight.detach()
    assert angle(w, group.feedback["B"]) > 60
    for step in range(1, 201):
        model.after_step(step, seed=3)
    b = group.feedback["B"].detach()
    assert angle(w, b) < 10
    assert 0.8 < float(b.norm() / w.norm()) < 1.2  # decay = noise**2: B -> W, not just parallel
    assert angle(model.groups["img__to__h"].weight, model.groups["img__to__h"].feedback["B"]) < 10


def test_weight_mirror_step_is_the_hand_computed_noise_correlation():
    opts = {"batch": 7, "noise": 0.5, "lr": 0.3, "decay": 0.1, "every": 2}
    model = compile(
        linear_net("weight_mirror", HIDDEN["units"], **opts),
        input_shape=(1, 2, 2),
        num_classes=3,
        seed=4,
    ).double()
    group = model.groups["h__to__out"]
    w, b0 = group.weight.detach().clone(), group.feedback["B"].detach().clone()
    model.after_step(1, seed=9)  # every=2: no mirror phase after step 1
    torch.testing.assert_close(group.feedback["B"], b0)
    model.after_step(2, seed=9)
    gen = torch.Generator().manual_seed(derive_seed(9, "after_step", group.name, "2"))
    x = 0.5 * torch.randn(7, w.shape[1], generator=gen, dtype=torch.float64)
    y = x @ w.t()
    expected = b0 + 0.3 * (y.t() @ x / 7 - 0.1 * b0)
    torch.testing.assert_close(group.feedback["B"].detach(), expected)
    # the same step again draws the same noise (resume-safe); B is state in the feedback tensor
    b2 = group.feedback["B"].detach().clone()
    group.feedback["B"].data.copy_(b0)
    model.after_step(2, seed=9)
    torch.testing.assert_close(group.feedback["B"].detach(), b2, rtol=0, atol=0)
    assert not group.feedback["B"].requires_grad  # optimisers never touch it


def test_weight_mirror_conv_kernel_and_warmup():
    w = torch.randn(4, 3, 3, 3)
    b = torch.zeros_like(w)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        mirror_step(b, w, gen, batch=256, noise=1.0, lr=0.05, decay=1.0)
    assert angle(w, b) < 10
    c = Circuit("wm")
    c.input("img")
    c.area("h", Units(5))
    c.readout("out")
    c.connect("img", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    c.feedback_everywhere("weight_mirror", warmup=300)
    group = compile(c, input_shape=(1, 3, 3), num_classes=4, seed=0).groups["h__to__out"]
    assert angle(group.weight, group.feedback["B"]) < 10


def test_learned_rule_options_are_checked():
    with pytest.raises(ValueError, match="signs"):
        compile(
            linear_net("kolen_pollack", HIDDEN["units"], signs="maybe"),
            input_shape=(1, 2, 2),
            num_classes=3,
        )
    with pytest.raises(ValueError, match="batch"):
        compile(
            linear_net("weight_mirror", HIDDEN["units"], batch=0),
            input_shape=(1, 2, 2),
            num_classes=3,
        )
