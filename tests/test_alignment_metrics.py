"""error_angle, update_angle and feedback_update_norm: the shadow backward and what fit records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xarray as xr
from small_circuits import small_ei_cnn, two_hidden_mlp

from biofa import Circuit, E, I, Train, Units, compile, conv, dense
from biofa.measure.metrics import METRICS, angle, frobenius_norm
from biofa.measure.shadow import shadow_backward, shadow_metrics
from biofa.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")


def mlp(rule: str, hidden=((E(5), I(2)), (Units(5),))) -> Circuit:
    return two_hidden_mlp(rule, hidden)


def cnn(rule: str, units: bool = False) -> Circuit:
    """Conv areas with batch norm; v2 reads image and v1 through ONE batched conv group."""
    pops = (lambda n: (Units(n),)) if units else (lambda n: (E(n), I(max(1, n // 3))))
    c = Circuit("cnn")
    c.input("img")
    c.area("v1", *pops(4), batch_norm=True)
    c.area("v2", *pops(6), batch_norm=True, pool="max")
    c.area("h", *pops(8))
    c.readout("out")
    c.connect("img", "v1", conv(3))
    c.connect("v1", "v2", conv(3))
    c.connect("img", "v2", conv(3))
    c.connect("v2", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    if rule != "backprop":
        c.feedback_everywhere(rule)
    return c


def batch(n=8, shape=(1, 3, 3), classes=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=dtype), torch.randint(
        0, classes, (n,), generator=g
    )


def softmax_error(logits, y):
    return (torch.softmax(logits, 1) - F.one_hot(y, logits.shape[1]).to(logits.dtype)) / len(y)


def by_hand(model, x, y, feedback):
    """Errors at h1, h2 outputs and weight gradients of the MLP, with ``feedback[key]`` in place
    of each W on the way back (``feedback = weights`` is backprop)."""
    g, a = model.groups, model.areas
    w1, w2, w3 = (g[k].weight for k in ("img__to__h1", "h1__to__h2", "h2__to__out"))
    x1 = x.flatten(1)
    a1 = x1 @ w1.t() + a["h1"].bias
    h1 = F.relu(a1)
    a2 = h1 @ w2.t() + a["h2"].bias
    h2 = F.relu(a2)
    e = softmax_error(h2 @ w3.t() + a["out"].bias, y)
    dh2 = e @ feedback["h2__to__out"]
    d2 = dh2 * (a2 > 0)
    dh1 = d2 @ feedback["h1__to__h2"]
    d1 = dh1 * (a1 > 0)
    grads = {"img__to__h1": d1.t() @ x1, "h1__to__h2": d2.t() @ h1, "h2__to__out": e.t() @ h2}
    return {"h1": dh1, "h2": dh2}, grads


@torch.no_grad()
def weights_of(model):
    return {k: g.weight.detach().clone() for k, g in model.groups.items()}


def test_feedback_alignment_shadow_is_the_hand_products():
    model = compile(mlp("feedback_alignment"), input_shape=(1, 3, 3), num_classes=4).double()
    x, y = batch()
    rule, exact = shadow_backward(model, x, y)
    with torch.no_grad():
        b = {k: g.feedback["B"] for k, g in model.groups.items()}
        rule_err, rule_w = by_hand(model, x, y, b)
        bp_err, bp_w = by_hand(model, x, y, weights_of(model))
    for area in ("h1", "h2"):
        torch.testing.assert_close(rule.errors[area], rule_err[area])
        torch.testing.assert_close(exact.errors[area], bp_err[area])
    for key in rule_w:
        torch.testing.assert_close(rule.weights[key], rule_w[key])
        torch.testing.assert_close(exact.weights[key], bp_w[key])
    assert rule.feedback == {} and exact.feedback == {}  # B is fixed

    out = shadow_metrics(model, x, y)
    # error_angle of a projection: the error at its *source* area; none for the input's
    assert set(out["error_angle"]) == {"h1->h2", "h2->out"}
    assert out["error_angle"]["h1->h2"].item() == pytest.approx(
        angle(rule_err["h1"], bp_err["h1"]).item(), abs=1e-9
    )
    assert out["error_angle"]["h2->out"].item() == pytest.approx(
        angle(rule_err["h2"], bp_err["h2"]).item(), abs=1e-9
    )
    for p, key in (("img->h1", "img__to__h1"), ("h1->h2", "h1__to__h2")):
        ref = angle(rule_w[key], bp_w[key]).item()
        assert out["update_angle"][p].item() == pytest.approx(ref, abs=1e-9)
        assert 1.0 < ref < 179.0  # a real angle, not a degenerate 0 or 180
    # the readout's update uses only the output error: identical to backprop's
    assert out["update_angle"]["h2->out"].item() == pytest.approx(0.0, abs=1e-6)
    assert "feedback_update_norm" not in out


def test_direct_feedback_alignment_shadow_delivers_e_times_b():
    model = compile(mlp("direct_feedback_alignment"), input_shape=(1, 3, 3), num_classes=4,
                    seed=2).double()  # fmt: skip
    x, y = batch(seed=3)
    rule, exact = shadow_backward(model, x, y)
    with torch.no_grad():
        bp_err, bp_w = by_hand(model, x, y, weights_of(model))
        logits = model(x)
        e = softmax_error(logits, y)
    for area in ("h1", "h2"):
        torch.testing.assert_close(rule.errors[area], e @ model.hooks[area].feedback["B"])
        torch.testing.assert_close(exact.errors[area], bp_err[area])
    for key in bp_w:
        torch.testing.assert_close(exact.weights[key], bp_w[key])
    # after the shadow, the direct pathways and the rules are back in charge
    assert not model.mode.exact
    assert not model.groups["h1__to__h2"].send_error


@pytest.mark.parametrize("rule", ["feedback_alignment", "usf"])  # DFA: see above (groups differ)
def test_rule_pass_is_the_training_backward_and_exact_pass_is_backprop(rule):
    """Units CNN (weights are leaves): the rule pass gives the real .grad of a training step; the
    exact pass gives the .grad of the same circuit compiled with backprop (same forward weights)."""
    kwargs = dict(input_shape=(1, 8, 8), num_classes=5, seed=4)
    model = compile(cnn(rule, units=True), **kwargs).double().train()
    twin = compile(cnn("backprop", units=True), **kwargs).double().train()
    twin.load_state_dict(model.state_dict(), strict=False)
    x, y = batch(n=6, shape=(1, 8, 8), classes=5, seed=5)
    rule_g, exact_g = shadow_backward(model, x, y)
    F.cross_entropy(model(x), y).backward()
    F.cross_entropy(twin(x), y).backward()
    for key, group in model.groups.items():
        torch.testing.assert_close(rule_g.weights[key], group.weight.grad)
        torch.testing.assert_close(exact_g.weights[key], twin.groups[key].weight.grad)
    out = shadow_metrics(model, x, y)
    (key,) = [k for k in model.groups if "__and__" in k]
    group, ref_grad = model.groups[key], twin.groups[key].weight.grad
    assert len(group.slices) == 2  # two projections batched into one weight: one angle each
    for s in group.slices:
        ref = angle(group.weight.grad[:, s.start : s.stop], ref_grad[:, s.start : s.stop])
        assert out["update_angle"][s.projection].item() == pytest.approx(ref.item(), abs=1e-9)


def test_shadow_touches_no_training_state():
    model = compile(cnn("feedback_alignment"), input_shape=(1, 8, 8), num_classes=5, seed=1)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = batch(n=6, shape=(1, 8, 8), classes=5, dtype=torch.float32)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    F.cross_entropy(model(x), y).backward()  # leave real gradients in .grad
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    opt_state = {k: {n: t.clone() for n, t in v.items()} for k, v in opt.state.items()}
    out = shadow_metrics(model, x, y)
    assert out["error_angle"] and out["update_angle"]
    for k, v in model.state_dict().items():  # weights and BN running stats, num_batches_tracked
        assert torch.equal(v, state[k]), k
    for n, p in model.named_parameters():
        assert (p.grad is None) == (n not in grads) and (
            p.grad is None or torch.equal(p.grad, grads[n])
        ), n
    for k, v in opt.state.items():
        assert all(torch.equal(t, opt_state[k][n]) for n, t in v.items())
    assert model.training and all(
        m.track_running_stats
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    )
    assert all(not a._forward_hooks for a in model.areas.values())


def test_loss_scale_changes_no_angle():
    model = compile(mlp("feedback_alignment"), input_shape=(1, 3, 3), num_classes=4).double()
    x, y = batch()
    a, b = shadow_metrics(model, x, y), shadow_metrics(model, x, y, loss_scale=1024.0)
    for name in ("error_angle", "update_angle"):
        for p in a[name]:
            assert b[name][p].item() == pytest.approx(a[name][p].item(), abs=1e-9)


def test_kolen_pollack_feedback_update_norm_is_its_pseudo_gradient():
    """Kolen-Pollack gives B the weight's own update: ||g_B|| per projection = ||dW_rule||."""
    model = compile(mlp("kolen_pollack"), input_shape=(1, 3, 3), num_classes=4).double()
    x, y = batch(seed=7)
    rule, _ = shadow_backward(model, x, y)
    out = shadow_metrics(model, x, y)
    assert set(out["feedback_update_norm"]) == {"img->h1", "h1->h2", "h2->out"}
    for key, group in model.groups.items():
        (s,) = group.slices
        (g_b,) = rule.feedback[key]
        # B's pseudo-gradient is dW itself (up to per-entry signs where B carries Dale signs)
        torch.testing.assert_close(g_b.abs(), rule.weights[key].abs())
        assert out["feedback_update_norm"][s.projection].item() == pytest.approx(
            frobenius_norm(rule.weights[key]).item(), rel=1e-12
        )


# ---------------------------------------------------------------------- what fit records
def small_cnn(rule: str) -> Circuit:
    return small_ei_cnn(rule)


QUICK = Train(epochs=1, batch_size=32, max_steps=30, optimizer="adam", lr=1e-2, record_every=5)


def test_backprop_error_and_update_angles_are_zero_at_every_step(tmp_path):
    with xr.open_dataset(fit(small_cnn("backprop"), QUICK, out=tmp_path / "bp.nc")) as ds:
        ds = ds.squeeze(["rule", "seed"])
        for name in ("error_angle", "update_angle"):
            assert ds[name].attrs == {"long_name": METRICS[name].long_name, "units": "degree"}
        assert ds.step.size == 6  # steps 5, 10, ..., 30
        np.testing.assert_allclose(ds.update_angle.values, 0.0, atol=1e-6)
        err = ds.error_angle.transpose("step", "projection")
        assert err.sel(projection="image->v1").isnull().all()  # the input area gets no error
        np.testing.assert_allclose(err.drop_sel(projection="image->v1").values, 0.0, atol=1e-6)
        assert "feedback_update_norm" not in ds


def test_fit_records_feedback_update_norm_only_for_learned_feedback(tmp_path):
    kp = fit(small_cnn("kolen_pollack"), QUICK.replace(max_steps=10), out=tmp_path / "kp.nc")
    fa = fit(small_cnn("feedback_alignment"), QUICK.replace(max_steps=10), out=tmp_path / "fa.nc")
    with xr.open_dataset(kp) as ds:
        norm = ds.feedback_update_norm
        assert norm.attrs["units"] == "1" and norm.attrs["long_name"]
        assert (norm > 0).all()
    with xr.open_dataset(fa) as ds:
        assert "feedback_update_norm" not in ds
        assert ds.error_angle.notnull().sum() > 0 and ds.update_angle.notnull().all()


def units_mlp(rule: str) -> Circuit:
    return mlp(rule, hidden=((Units(50),), (Units(50),)))


@pytest.mark.parametrize("seed", [0, 1])
def test_feedback_alignment_aligns_during_learning(tmp_path, seed):
    """Lillicrap et al. (2016): W comes to align with the fixed random B, so the angle between
    them falls from ~90 degrees, and the updates come within 90 degrees of backprop's."""
    train = Train(epochs=3, batch_size=32, optimizer="sgd", lr=0.05, record_every=15, seed=seed)
    c = units_mlp("feedback_alignment")
    c.name = "mlp"
    with xr.open_dataset(fit(c, train, out=tmp_path / "fa.nc")) as ds:
        ds = ds.squeeze(["rule", "seed"]).transpose("step", "projection")
        fb = ds.feedback_angle.sel(projection=["h1->h2", "h2->out"]).dropna("step")
        assert (fb.isel(step=0) > 80).all()  # random B: near orthogonal at first
        assert (fb.isel(step=-1) < fb.isel(step=0) - 8).all(), fb.values
        late = ds.update_angle.sel(projection=["img->h1", "h1->h2"]).dropna("step")
        late = late.isel(step=slice(late.sizes["step"] // 2, None)).mean("step")
        assert (late < 80).all(), late.values
        assert not math.isnan(float(ds.test_accuracy.dropna("step")[-1]))
