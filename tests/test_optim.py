"""Batch Manhattan against hand-computed updates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from biofa import Circuit, E, I, Units, compile, dense
from biofa.train.optim import BatchManhattan


def test_update_is_step_size_times_sign_of_the_gradient():
    w = torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0], requires_grad=True)
    w.grad = torch.tensor([1e-9, -7.0, 0.0, 2.0, -1e6])
    BatchManhattan([w], lr=0.01).step()
    torch.testing.assert_close(w.detach(), torch.tensor([0.49, -0.99, 2.0, -0.01, 3.01]))


def test_parameters_without_a_gradient_do_not_move():
    w, v = torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)
    w.grad = torch.ones(3)
    BatchManhattan([w, v], lr=0.5).step()
    assert torch.equal(v.detach(), torch.ones(2))


def test_momentum_and_weight_decay_follow_the_recursion_by_hand():
    lr, mu, lam = 0.1, 0.9, 0.01
    w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = BatchManhattan([w], lr=lr, momentum=mu, weight_decay=lam)
    grads = [torch.tensor([3.0, -1.0]), torch.tensor([-2.0, -5.0]), torch.tensor([0.0, 4.0])]
    ref, buf = [1.0, -2.0], None
    for g in grads:
        w.grad = g.double()
        opt.step()
        d = [(1.0 if gi > 0 else -1.0 if gi < 0 else 0.0) + lam * wi for gi, wi in zip(g, ref)]
        buf = d if buf is None else [mu * b + di for b, di in zip(buf, d)]
        ref = [wi - lr * b for wi, b in zip(ref, buf)]
    torch.testing.assert_close(w.detach(), torch.tensor(ref, dtype=torch.float64))


def mlp(rule: str) -> Circuit:
    c = Circuit("mlp")
    c.input("img")
    c.area("h1", E(6), I(2), batch_norm=True)
    c.area("h2", Units(5))
    c.readout("out")
    c.connect("img", "h1", dense(flatten=True))
    c.connect("h1", "h2", dense())
    c.connect("h2", "out", dense())
    if rule != "backprop":
        c.feedback_everywhere(rule)
    return c


@pytest.mark.parametrize("rule", ["backprop", "usf", "feedback_alignment"])
def test_works_on_a_circuit_with_backprop_and_feedback_rules(rule):
    model = compile(mlp(rule), input_shape=(1, 3, 3), num_classes=4, seed=0).double()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = BatchManhattan(params, lr=0.003)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(8, 1, 3, 3, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 4, (8,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        before = [(p.detach().clone(), p.grad.clone()) for p in params]
        opt.step()
        for p, (old, g) in zip(params, before):
            torch.testing.assert_close(p.detach() - old, -0.003 * torch.sign(g))
    # Dale's law still holds: the step acts on V, W = s |V|
    w = model.groups["h1__to__h2"].weight
    assert (w[:, :6] >= 0).all() and (w[:, 6:] <= 0).all()


def test_bad_settings_are_rejected():
    w = torch.ones(1, requires_grad=True)
    for kwargs, word in [
        ({"lr": 0.0}, "lr"),
        ({"lr": 0.1, "momentum": 1.0}, "momentum"),
        ({"lr": 0.1, "weight_decay": -1.0}, "weight_decay"),
    ]:
        with pytest.raises(ValueError, match=word):
            BatchManhattan([w], **kwargs)
