"""The same checks for every registered rule (``biofa.rules.available()``: built in or from an
entry point): the contract's shapes, the error the backward really sends, B = W gives backprop
where the rule allows it, a checkpoint round trip, seed-batched training equal to separate runs
where supported, options checked, abstract-or-final."""

from __future__ import annotations

import inspect
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from biofa import Circuit, E, I, Train, compile, conv, dense, rules
from biofa.train import batching_refusal, fit

NAMES = rules.available()
pytestmark = pytest.mark.usefixtures("one_thread")


def circuit(name: str) -> Circuit:
    """image -> v1 (conv, E/I) -> h (dense, E/I) -> out, with ``name`` on every pathway it can
    take (layer-wise: those with an E/I upper area, feedback alignment from the readout, so that
    rules needing E/I upper populations apply; direct: the readout's error to both areas)."""
    c = Circuit("contract")
    c.input("image")
    c.area("v1", E(6), I(2), pool="max")
    c.area("h", E(8), I(4))
    c.readout("out")
    c.connect("image", "v1", conv(3))
    c.connect("v1", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    if issubclass(rules.get(name), rules.DirectFeedbackRule):
        c.feedback("out", "h", rule=name)
        c.feedback("out", "v1", rule=name)
    else:
        c.feedback("h", "v1", rule=name)
        c.feedback("out", "h", rule="feedback_alignment")
    return c


def build(name: str, seed: int = 0):
    return compile(circuit(name), input_shape=(1, 8, 8), num_classes=10, seed=seed).double()


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64), torch.arange(6) % 10


def grads(model, x, y) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", NAMES)
def test_registered_rule_is_concrete_documented_and_final(name):
    cls = rules.get(name)
    assert not inspect.isabstract(cls) and cls.name == name
    assert issubclass(cls, (rules.FeedbackRule, rules.DirectFeedbackRule))
    assert cls.summary() and len(inspect.getdoc(sys.modules[cls.__module__]) or "") > 100
    with pytest.raises(TypeError, match="abstract or final"):
        type("Sub", (cls,), {"name": f"{name}_sub"})
    with pytest.raises(ValueError, match=f"for rule {name!r}"):
        rules.check(_with_options(name, no_such_option=1))


def _with_options(name: str, **options) -> Circuit:
    c = circuit(name)
    c.pathways = [type(p)(p.upper, p.lower, p.rule, {**p.options, **options})
                  if p.rule == name else p for p in c.pathways]  # fmt: skip
    return c


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_learned_tensors_get_gradients_of_their_own_shape(name):
    model = build(name)
    x, y = batch()
    g = grads(model, x, y)
    for key, group in model.groups.items():
        if isinstance(group.rule, rules.FeedbackRule) and group.send_error:
            assert group.effective_feedback().shape == group.weight.shape, key
    for pname, p in model.named_parameters():
        if p.requires_grad and any(p is q for q in model.feedback_parameters()):
            assert pname in g and g[pname].shape == p.shape and torch.isfinite(g[pname]).all()


@pytest.mark.parametrize("name", [n for n in NAMES if issubclass(rules.get(n), rules.FeedbackRule)])
def test_the_backward_sends_the_error_through_the_rules_own_feedback(name):
    """The error reaching v1 is ``op.input_grad(delta, B_eff)`` with the rule's own
    ``effective_feedback`` (so a CustomErrorPath equals it too), and h's weight gradient is the
    local product: by hand, with the dense op's formula, for every layer-wise rule."""
    model = build(name)
    group = model.groups["v1__to__h"]
    x, _ = batch(1)
    acts = {}
    hooks = [model.areas[a].register_forward_hook(lambda m, i, o, a=a: acts.__setitem__(a, o))
             for a in ("v1", "h")]  # fmt: skip
    with parametrize.cached():
        model(x)
        for hk in hooks:
            hk.remove()
        e = torch.randn_like(acts["h"])
        (delta,) = torch.autograd.grad(acts["h"], acts["v1"], e, retain_graph=True)
        (gw,) = torch.autograd.grad(acts["h"], group.weight, e)
        with torch.no_grad():
            pre_error = e * (acts["h"] > 0)  # through h's ReLU
            b = group.effective_feedback()
    if isinstance(group.rule, rules.CrossesNonlinearity):  # crosses v1's ReLU its own way
        return
    want = (pre_error @ b).view_as(delta)  # dense: delta_in = delta_out B_eff
    torch.testing.assert_close(delta, want, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gw, pre_error.t() @ acts["v1"].detach().flatten(1))


@pytest.mark.parametrize("name", NAMES)
def test_feedback_equal_to_w_gives_backprop_where_the_rule_allows_it(name):
    """Set every feedback tensor of W's shape to W; where the rule's B_eff then is W (and it
    crosses nonlinearities by their derivative), its gradients are backprop's, exactly."""
    model = build(name)
    with torch.no_grad():
        for group in model.groups.values():
            for t in group.feedback.values():
                if t.shape == group.weight.shape and t.dtype.is_floating_point:
                    t.copy_(group.weight)
    allows = (
        all(torch.allclose(g.effective_feedback(), g.weight) for g in model.groups.values())
        and not model.hooks
        and all(a.crossing is None for a in model.areas.values())
    )
    if not allows:
        pytest.skip(f"{name}: its feedback cannot be made equal to W (or it acts on areas)")
    x, y = batch(2)
    got = grads(model, x, y)
    with model.exact_gradients():
        want = grads(model, x, y)
    feedback = {id(p) for p in model.feedback_parameters()}
    forward = {n for n, p in model.named_parameters() if id(p) not in feedback}
    for n in forward & set(want):
        torch.testing.assert_close(got[n], want[n], rtol=1e-9, atol=1e-12, msg=n)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_gives_the_same_outputs_and_gradients(name, tmp_path):
    a = build(name, seed=3)
    x, y = batch(4)
    grads(a, x, y)  # some state in learned tensors' .grad does not matter; weights do
    path = tmp_path / "state.pt"
    torch.save(a.state_dict(), path)
    b = build(name, seed=99)  # other draws, then the checkpoint
    b.load_state_dict(torch.load(path, weights_only=True))
    torch.testing.assert_close(a(x), b(x))
    ga, gb = grads(a, x, y), grads(b, x, y)
    assert ga.keys() == gb.keys()
    for n in ga:
        torch.testing.assert_close(ga[n], gb[n], msg=n)


BIT_DRAWN = pytest.mark.xfail(
    strict=True,
    reason="brSF draws its magnitudes from a hash of W's bits (reproducible redraws after every "
    "update); batched kernels round W differently in the last bit, so the seeds draw other "
    "(equally distributed) magnitudes than their separate runs",
)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=BIT_DRAWN) if n == "brsf" else n for n in NAMES]
)
def test_seed_batched_training_equals_separate_runs_where_supported(name, tmp_path):
    train = Train(max_steps=3, record_every=3, eval_every=3, batch_size=16, lr=0.02,
                  device="cpu")  # fmt: skip
    why = batching_refusal(circuit(name), train)
    if why is not None:
        pytest.skip(f"{name}: {why}")
    import numpy as np
    import xarray as xr

    outs = [tmp_path / "b0.nc", tmp_path / "b1.nc"]
    batched = fit(circuit(name), train, out=outs, seeds=[0, 1])
    for seed, path in zip((0, 1), batched, strict=True):
        alone = fit(circuit(name), train.replace(seed=seed), out=tmp_path / f"s{seed}.nc")
        with xr.open_dataset(path) as got, xr.open_dataset(alone) as want:
            for v in ("loss", "test_accuracy", "feedback_angle", "weight_norm"):
                np.testing.assert_allclose(got[v].values, want[v].values, rtol=2e-4, atol=2e-5,
                                           err_msg=f"{name} seed {seed}: {v}")  # fmt: skip
