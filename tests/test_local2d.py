"""The locally connected projection (``local2d``) against a hand-written unfold/einsum reference,
in fp64, for backprop and for every layer-wise rule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import xarray as xr
from torch.nn.utils import parametrize

import biofa.rules
from biofa import Circuit, E, I, Train, Units, compile, dense, local2d
from biofa.kinds import Local2d
from biofa.train import fit

RULES = [
    name
    for name in biofa.rules.available()
    if issubclass(biofa.rules.get(name), biofa.rules.FeedbackRule)
]


def circuit(rule: str, ei: bool = False) -> Circuit:
    pops = (E(3), I(1)) if ei else (Units(4),)
    c = Circuit("local")
    c.input("image")
    c.area("v1", *pops)
    c.area("v2", *pops)
    c.readout("out")
    c.connect("image", "v1", local2d(3))
    c.connect("v1", "v2", local2d(3, stride=2, padding=0))
    c.connect("v2", "out", dense(flatten=True))
    if rule == "dale_feedback":  # needs E/I upper areas: not the readout
        c.feedback("v2", "v1", rule=rule)
        c.feedback("out", "v2", rule="feedback_alignment")
    elif rule != "backprop":
        c.feedback_everywhere(rule)
    return c


def reference_local(x, w, b, stride, padding):
    """``y[n, o, i, j] = sum_{c, u, v} w[o, c, u, v, i, j] x_pad[n, c, s i + u, s j + v] + b[o]``:
    the definition, by explicit windows (no unfold)."""
    n, c, h, wd = x.shape
    o, _, k, _, oh, ow = w.shape
    xp = F.pad(x, (padding,) * 4)
    y = torch.zeros(n, o, oh, ow, dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, stride * i : stride * i + k, stride * j : stride * j + k]
            y[:, :, i, j] = torch.einsum("ncuv,ocuv->no", patch, w[..., i, j])
    return y if b is None else y + b.view(1, -1, 1, 1)


def test_kind_declares_shapes_fan_in_and_refuses_a_vector_source():
    kind = local2d(3, stride=2, padding=1)
    assert kind.output_shape("a->b", (4, 9, 9), 5) == (5, 5, 5)
    assert kind.weight_shape(5, 4, (5, 5, 5)) == (5, 4, 3, 3, 5, 5)
    assert kind.fan_in((5, 4, 3, 3, 5, 5)) == 36
    with pytest.raises(
        ValueError, match="local2d projection 'a->b' reads area 'a', which is a vector"
    ):
        kind.check_source("a->b", "a", spatial=False)
    with pytest.raises(ValueError, match="shrinks 2x2 to nothing"):
        local2d(5, padding=0).output_shape("a->b", (1, 2, 2), 3)
    with pytest.raises(ValueError, match=r"local2d\(kernel=0\)"):
        Local2d(0)


def test_forward_and_every_gradient_equal_the_reference_in_fp64():
    torch.manual_seed(0)
    model = compile(circuit("backprop"), input_shape=(2, 7, 7), num_classes=3, seed=1).double()
    x = torch.randn(5, 2, 7, 7, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1])
    g1, g2, g3 = (model.groups[k] for k in ("image__to__v1", "v1__to__v2", "v2__to__out"))
    w1 = g1.weight.detach().clone().requires_grad_(True)
    w2 = g2.weight.detach().clone().requires_grad_(True)
    w3 = g3.weight.detach().clone().requires_grad_(True)
    b1, b2, b3 = (
        model.areas[a].bias.detach().clone().requires_grad_(True) for a in ("v1", "v2", "out")
    )
    h1 = F.relu(reference_local(x, w1, b1, 1, 1))
    h2 = F.relu(reference_local(h1, w2, b2, 2, 0))
    ref = F.linear(h2.flatten(1), w3, b3)
    torch.testing.assert_close(model(x), ref, rtol=1e-8, atol=1e-10)
    loss_ref = F.cross_entropy(ref, y)
    grads_ref = torch.autograd.grad(loss_ref, [x, w1, w2, w3, b1, b2, b3])
    x2 = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x2), y)
    params = [g1.weight, g2.weight, g3.weight]  # W itself (Units: no parametrization)
    grads = torch.autograd.grad(
        loss, [x2, *params, *(model.areas[a].bias for a in ("v1", "v2", "out"))]
    )
    for got, want in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_sends_the_error_through_its_own_feedback(rule):
    """The error reaching v1 is the transposed local op of the error at v2 with the rule's B
    (by hand: explicit windows), and v2's weight update is the local product -- for every
    layer-wise rule; E/I populations where a rule needs them."""
    ei = rule == "dale_feedback"
    torch.manual_seed(1)
    model = compile(circuit(rule, ei=ei), input_shape=(2, 7, 7), num_classes=3, seed=2).double()
    group = model.groups["v1__to__v2"]
    x = torch.randn(4, 2, 7, 7, dtype=torch.float64)
    acts = {}
    handles = [model.areas[a].register_forward_hook(lambda m, i, o, a=a: acts.__setitem__(a, o))
               for a in ("v1", "v2")]  # fmt: skip
    with parametrize.cached():  # W = s|V| (E/I) computed once: the tensor forward uses
        logits = model(x)
        for h in handles:
            h.remove()
        h1, h2 = acts["v1"], acts["v2"]
        e2 = torch.randn_like(h2)
        (delta1,) = torch.autograd.grad(h2, h1, e2, retain_graph=True)
        (gw,) = torch.autograd.grad(h2, group.weight, e2)
    with torch.no_grad():
        b = group.effective_feedback()
        d2 = e2 * (h2 > 0)  # through v2's ReLU
        h1v = h1.detach().requires_grad_(True)
        bv = b.detach().requires_grad_(True)
        out = reference_local(h1v, bv, None, 2, 0)
    # by hand: delta_in = d/dx <out(x; B), d2>, dW = d/dB <out(x; B), d2> (linear in both)
    with torch.enable_grad():
        out = reference_local(h1v, bv, None, 2, 0)
        want_delta, want_gw = torch.autograd.grad((out * d2).sum(), [h1v, bv])
    if rule == "ekdaa":  # EKDAA crosses v1's ReLU by its target difference, not the derivative
        return
    torch.testing.assert_close(delta1, want_delta, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(gw, want_gw, rtol=1e-8, atol=1e-10)
    assert logits.shape == (4, 3)


def test_local2d_trains_on_digits_above_chance(tmp_path):
    c = Circuit("local_digits")
    c.input("image")
    c.area("v1", Units(8), pool="max")
    c.readout("out")
    c.connect("image", "v1", local2d(3))
    c.connect("v1", "out", dense(flatten=True))
    c.feedback_everywhere("feedback_alignment")

    path = fit(c, Train(epochs=2, batch_size=32, lr=0.05, record_every=20), out=tmp_path / "r.nc")
    with xr.open_dataset(path) as ds:
        assert ds.op.sel(projection="image->v1").item() == "local2d"
        assert ds.test_accuracy.dropna("step").isel(step=-1).item() > 0.5  # chance: 0.1
