"""Sign-concordant feedback (usf, brsf, frsf, usf_flipped) and Dale's-law feedback, against
hand-built feedback matrices pushed through the real backward (fp64)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from small_circuits import two_hidden_mlp

import biofa.rules
from biofa import Circuit, E, I, Units, compile, conv, dense
from biofa.measure.metrics import sign_concordance
from biofa.rules import brsf as brsf_module

SIGN_RULES = ("usf", "brsf", "frsf")
CIRCUITS = Path(__file__).resolve().parents[1] / "circuits"


def mlp(rule: str, hidden=((E(5), I(2)), (Units(5),)), **options) -> Circuit:
    return two_hidden_mlp(rule, hidden, **options)


def softmax_error(logits, y):
    return (torch.softmax(logits, 1) - F.one_hot(y, logits.shape[1]).to(logits.dtype)) / len(y)


# -- independent reference of brSF's counter-based draw: plain Python integers --------------------
def _mix32(x: int) -> int:
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x21F0AAAD) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x735A2D97) & 0xFFFFFFFF
    return x ^ (x >> 15)


def _words(w: torch.Tensor) -> list[int]:
    bits = w.detach().contiguous().reshape(-1).view(torch.int64).tolist()  # float64 weights
    return [b & 0xFFFFFFFF for b in bits] + [(b >> 32) & 0xFFFFFFFF for b in bits]


def brsf_magnitudes_by_hand(w: torch.Tensor, seed: int) -> torch.Tensor:
    total = sum(word ^ i for i, word in enumerate(_words(w)))
    key = _mix32((total & 0xFFFFFFFF) ^ _mix32(total >> 32))
    k1 = _mix32(key ^ (seed & 0xFFFFFFFF))
    k2 = _mix32(k1 ^ (seed >> 32))
    u = [((_mix32(_mix32(i ^ k1) ^ k2) >> 9) + 0.5) / 2**23 for i in range(w.numel())]
    u = torch.tensor(u, dtype=torch.float32)
    return (math.sqrt(2.0) * torch.erfinv(u)).double().view(w.shape)


def hand_feedback(rule: str, group) -> torch.Tensor:
    """sign(W) with the rule's magnitudes, built without calling the rule."""
    w = group.weight.detach()
    if rule == "usf":
        return torch.sign(w)
    if rule == "frsf":
        return torch.sign(w) * group.feedback["magnitude"].detach()
    if rule == "brsf":
        return torch.sign(w) * brsf_magnitudes_by_hand(w, int(group.feedback["seed"]))
    if rule == "usf_flipped":
        return -torch.sign(w)
    raise AssertionError(rule)


@pytest.mark.parametrize("rule", [*SIGN_RULES, "usf_flipped"])
def test_dense_errors_and_updates_are_the_hand_products(rule):
    model = compile(mlp(rule), input_shape=(1, 3, 3), num_classes=4, seed=3).double()
    x, y = torch.randn(8, 1, 3, 3, dtype=torch.float64), torch.randint(0, 4, (8,))
    g = model.groups
    with torch.no_grad():
        b_out, b_12 = hand_feedback(rule, g["h2__to__out"]), hand_feedback(rule, g["h1__to__h2"])
    F.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        a1 = x.flatten(1) @ g["img__to__h1"].weight.t() + model.areas["h1"].bias
        h1 = F.relu(a1)
        a2 = h1 @ g["h1__to__h2"].weight.t() + model.areas["h2"].bias
        h2 = F.relu(a2)
        e = softmax_error(h2 @ g["h2__to__out"].weight.t() + model.areas["out"].bias, y)
        d2 = (e @ b_out) * (a2 > 0)
        d1 = (d2 @ b_12) * (a1 > 0)
    torch.testing.assert_close(g["h2__to__out"].weight.grad, e.t() @ h2)
    torch.testing.assert_close(g["img__to__h1"].weight.grad, d1.t() @ x.flatten(1))
    v12 = g["h1__to__h2"].parametrizations.weight.original  # Dale: dW/dV = s sign(V)
    sign = torch.tensor([1.0] * 5 + [-1.0] * 2, dtype=torch.float64)
    torch.testing.assert_close(v12.grad, (d2.t() @ h1) * sign * torch.sign(v12.detach()))
    assert all(p.grad is None for p in model.feedback_parameters())
    for group in g.values():  # the group's view is the matrix the backward used
        torch.testing.assert_close(group.effective_feedback(), hand_feedback(rule, group))


def conv_circuit(rule: str, **options) -> Circuit:
    c = Circuit("cnn")
    c.input("img")
    c.area("v1", E(3), I(1))
    c.area("v2", Units(4), pool="global_avg")
    c.readout("out")
    c.connect("img", "v1", conv(3))
    c.connect("v1", "v2", conv(3, stride=2, padding=1))
    c.connect("img", "v2", conv(3, stride=2, padding=1))  # batched with v1->v2 into one kernel
    c.connect("v2", "out", dense())
    c.feedback_everywhere(rule, **options)
    return c


@pytest.mark.parametrize("rule", SIGN_RULES)
def test_conv_error_is_transposed_conv_with_hand_built_kernel(rule):
    model = compile(conv_circuit(rule), input_shape=(2, 7, 7), num_classes=3, seed=1).double()
    g, a = model.groups, model.areas
    group = g["v1__to__v2__and__img__to__v2"]
    assert [s.projection for s in group.slices] == ["v1->v2", "img->v2"]
    with torch.no_grad():
        kernel = hand_feedback(rule, group)
    x, y = torch.randn(4, 2, 7, 7, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    F.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        a1 = F.conv2d(x, g["img__to__v1"].weight, a["v1"].bias, 1, 1)
        v1 = F.relu(a1)
        both = torch.cat([v1, x], 1)
        a2 = F.conv2d(both, group.weight, a["v2"].bias, 2, 1)
        v2 = F.relu(a2).mean((2, 3))
        logits = v2 @ g["v2__to__out"].weight.t() + a["out"].bias
        e = softmax_error(logits, y)
        b_out = hand_feedback(rule, g["v2__to__out"])
        d2 = (e @ b_out)[:, :, None, None].expand_as(a2) / a2[0, 0].numel() * (a2 > 0)
        d_both = torch.nn.grad.conv2d_input(both.shape, kernel, d2, 2, 1)
        d1 = d_both[:, :4] * (a1 > 0)
        w1 = torch.nn.grad.conv2d_weight(x, g["img__to__v1"].weight.shape, d1, 1, 1)
    v = g["img__to__v1"].weight  # input area is Units: no parametrization
    torch.testing.assert_close(v.grad, w1)
    # the error really went through sign(W)-based feedback, not W
    assert not torch.allclose(kernel, group.weight.detach())


def test_brsf_draw_matches_the_python_integer_reference():
    w = torch.randn(5, 7, dtype=torch.float64)
    seed = torch.tensor(123456789012345, dtype=torch.int64)
    got = brsf_module.half_normal_hash((5, 7), seed, brsf_module.digest(w), torch.float64)
    torch.testing.assert_close(got, brsf_magnitudes_by_hand(w, 123456789012345))


def test_brsf_magnitudes_are_half_normal():
    w = torch.randn(300, 400, generator=torch.Generator().manual_seed(1))
    m = brsf_module.half_normal_hash(
        (300, 400), torch.tensor(7), brsf_module.digest(w), torch.float64
    )
    n = m.numel()
    assert (m > 0).all()
    # within 4 standard errors of E|N| = sqrt(2/pi) and E N^2 = 1
    assert abs(float(m.mean()) - math.sqrt(2 / math.pi)) < 4 * math.sqrt(1 - 2 / math.pi) / n**0.5
    assert abs(float((m**2).mean()) - 1.0) < 4 * math.sqrt(2 / n)
    # Kolmogorov-Smirnov against the half-normal CDF erf(m / sqrt 2), 0.1% level
    cdf = torch.erf(m.flatten() / math.sqrt(2)).sort().values
    ks = (cdf - torch.arange(1, n + 1, dtype=torch.float64) / n).abs().max()
    assert float(ks) * math.sqrt(n) < 1.95


def sgd_steps(model, steps: int, lr: float = 0.1, seed: int = 0, each=None):
    """A plain SGD loop on random data; ``each(step)`` is called before every step's forward."""
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr)
    for step in range(steps):
        if each is not None:
            each(step)
        x = torch.randn(16, *model.input_shape, generator=gen, dtype=torch.float64)
        y = torch.randint(0, model.num_classes, (16,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def test_brsf_redraws_every_batch_and_frsf_does_not():
    feedback = {}
    models = {
        r: compile(mlp(r), input_shape=(1, 3, 3), num_classes=4, seed=0).double()
        for r in ("brsf", "frsf")
    }
    for rule, model in models.items():
        group = model.groups["h1__to__h2"]
        feedback[rule] = []
        sgd_steps(
            model,
            4,
            each=lambda _, g=group, r=rule: feedback[r].append(g.effective_feedback().abs()),
        )
    for before, after in zip(feedback["brsf"], feedback["brsf"][1:]):
        assert not torch.allclose(before, after)  # new magnitudes after every update
        assert (before - after).abs().max() > 0.1
    for after in feedback["frsf"][1:]:
        torch.testing.assert_close(after, feedback["frsf"][0])
    # same W, same draw: the group's view equals the backward's and is stable
    group = models["brsf"].groups["h1__to__h2"]
    torch.testing.assert_close(group.effective_feedback(), group.effective_feedback())


def test_brsf_draws_survive_a_checkpoint():
    a = compile(mlp("brsf"), input_shape=(1, 3, 3), num_classes=4, seed=0).double()
    sgd_steps(a, 3, seed=1)
    state = {k: v.clone() for k, v in a.state_dict().items()}
    assert any(k.endswith("feedback.seed") for k in state)
    b = compile(mlp("brsf"), input_shape=(1, 3, 3), num_classes=4, seed=5).double()
    b.load_state_dict(state)
    for name, group in a.groups.items():
        torch.testing.assert_close(b.groups[name].effective_feedback(), group.effective_feedback())
    sgd_steps(a, 3, seed=2)
    sgd_steps(b, 3, seed=2)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, msg=name)


@pytest.mark.parametrize("rule", SIGN_RULES)
def test_sign_concordance_is_exactly_one_at_every_step(rule):
    model = compile(
        conv_circuit(rule, norm="sn"), input_shape=(2, 7, 7), num_classes=3, seed=2
    ).double()
    seen = []

    def check(_):
        for group in model.groups.values():
            seen.append(float(sign_concordance(group.weight, group.effective_feedback())))

    sgd_steps(model, 5, lr=0.5, each=check)
    assert len(seen) == 5 * len(model.groups) and set(seen) == {1.0}


@pytest.mark.parametrize(
    ("rule", "options", "expected"),
    [
        ("usf_flipped", {}, 0.0),
        ("usf", {"concordance": 0.0}, 0.0),
        ("usf", {"concordance": 0.5}, 0.5),
        ("frsf", {"concordance": 0.75}, 0.75),
        ("brsf", {"concordance": 0.25, "norm": "sn"}, 0.25),
    ],
)
def test_random_sign_controls_have_the_configured_concordance(rule, options, expected):
    model = compile(
        conv_circuit(rule, **options), input_shape=(2, 7, 7), num_classes=3, seed=4
    ).double()

    def check(_):
        for s, group in model.projection_slices():
            w = group.weight.detach()[:, s.start : s.stop]
            b = group.effective_feedback()[:, s.start : s.stop]
            got = float(sign_concordance(w, b))
            # exact up to rounding k = round((1 - c) n) within each projection
            assert abs(got - expected) <= 0.5 / w.numel() + 1e-12, (s.projection, got)

    sgd_steps(model, 3, lr=0.5, each=check)


def test_option_values_are_checked_when_the_circuit_is_validated():
    for options, word in [
        ({"norm": "batch"}, "norm"),
        ({"concordance": 1.5}, "concordance"),
        ({"scale": -1.0}, "scale"),
        ({"typo": 1}, "typo"),
    ]:
        with pytest.raises(ValueError, match=word):
            biofa.rules.check(mlp("usf", **options))
    with pytest.raises(ValueError, match="concordance"):
        biofa.rules.check(mlp("usf_flipped", concordance=0.5))


# -- Dale's-law feedback ---------------------------------------------------------------------------
def dale_mlp(learned: bool) -> Circuit:
    c = Circuit("dale")
    c.input("img")
    c.area("h1", E(6), I(3))
    c.area("h2", E(4), I(2))
    c.readout("out")
    c.connect("img", "h1", dense(flatten=True))
    c.connect("h1", "h2", dense())
    c.connect("h2", "out", dense())
    c.feedback("h2", "h1", "dale_feedback", learned=learned)
    c.feedback("out", "h2", "feedback_alignment")
    return c


def test_dale_feedback_rows_take_the_upper_populations_sign_and_carry_the_error():
    model = compile(dale_mlp(False), input_shape=(1, 3, 3), num_classes=4, seed=0).double()
    g = model.groups["h1__to__h2"]
    row_sign = torch.tensor([1.0] * 4 + [-1.0] * 2, dtype=torch.float64)[:, None]
    b = row_sign * g.feedback["V"].detach().abs()  # by hand: upper unit i's sign on row i
    torch.testing.assert_close(g.effective_feedback(), b)
    assert (g.effective_feedback()[:4] >= 0).all() and (g.effective_feedback()[4:] <= 0).all()
    x, y = torch.randn(8, 1, 3, 3, dtype=torch.float64), torch.randint(0, 4, (8,))
    F.cross_entropy(model(x), y).backward()
    gr = model.groups
    with torch.no_grad():
        a1 = x.flatten(1) @ gr["img__to__h1"].weight.t() + model.areas["h1"].bias
        a2 = F.relu(a1) @ g.weight.t() + model.areas["h2"].bias
        logits = F.relu(a2) @ gr["h2__to__out"].weight.t() + model.areas["out"].bias
        d2 = (softmax_error(logits, y) @ gr["h2__to__out"].feedback["B"]) * (a2 > 0)
        d1 = (d2 @ b) * (a1 > 0)
    v1 = gr["img__to__h1"].weight.grad
    torch.testing.assert_close(v1, d1.t() @ x.flatten(1))


@pytest.mark.parametrize("learned", [True, False])
def test_dale_feedback_signs_survive_training_with_a_large_learning_rate(learned):
    model = compile(dale_mlp(learned), input_shape=(1, 3, 3), num_classes=4, seed=1).double()
    g = model.groups["h1__to__h2"]
    v0 = g.feedback["V"].detach().clone()
    row_sign = torch.tensor([1.0] * 4 + [-1.0] * 2, dtype=torch.float64)[:, None]
    sgd_steps(model, 20, lr=5.0)
    b = g.effective_feedback()
    assert torch.isfinite(b).all()
    assert ((b * row_sign) >= 0).all()  # every feedback weight keeps its population's sign
    assert g.feedback["V"].requires_grad == learned
    if learned:
        assert (g.feedback["V"].detach() - v0).abs().max() > 0.1  # the magnitudes did learn
        assert torch.sign(g.feedback["V"].detach()).ne(torch.sign(v0)).any(), (
            "some V crossed zero, B kept its sign anyway"
        )
    else:
        assert torch.equal(g.feedback["V"].detach(), v0)  # fixed ones never change


def test_dale_feedback_kolen_pollack_pseudo_gradient_by_hand():
    model = compile(dale_mlp(True), input_shape=(1, 3, 3), num_classes=4, seed=2).double()
    g = model.groups["h1__to__h2"]
    x, y = torch.randn(8, 1, 3, 3, dtype=torch.float64), torch.randint(0, 4, (8,))
    F.cross_entropy(model(x), y).backward()
    v = g.feedback["V"]
    row_sign = torch.tensor([1.0] * 4 + [-1.0] * 2, dtype=torch.float64)[:, None]
    # the forward weight's own local update delta^T x (before the Dale chain rule) ...
    w_grad = (
        g.parametrizations.weight.original.grad
        * torch.sign(g.parametrizations.weight.original.detach())
        * torch.tensor([1.0] * 6 + [-1.0] * 3)
    )
    # ... is B's pseudo-gradient, taken through B = s |V|
    torch.testing.assert_close(v.grad, w_grad * row_sign * torch.sign(v.detach()))


def test_dale_feedback_needs_an_ei_upper_area():
    c = mlp("feedback_alignment", hidden=((E(4), I(1)), (Units(5),)))
    c.feedback("h2", "h1", "dale_feedback")
    with pytest.raises(ValueError, match=r"h2->h1.*'h2'.*E\(n\), I\(m\)"):
        compile(c, input_shape=(1, 3, 3), num_classes=4)
    c = mlp("feedback_alignment")
    c.feedback("out", "h2", "dale_feedback")
    with pytest.raises(ValueError, match="out->h2"):
        compile(c, input_shape=(1, 3, 3), num_classes=4)


# -- the paper specs -------------------------------------------------------------------------------
def _load(name: str):
    sys.path.insert(0, str(CIRCUITS))
    try:
        import importlib

        return importlib.import_module(name)
    finally:
        sys.path.remove(str(CIRCUITS))


@pytest.mark.parametrize(
    ("spec", "kwargs", "shape"),
    [
        ("sign_symmetry", {}, (1, 8, 8)),
        ("sign_symmetry", {"rule": "brsf", "batch_norm": False, "concordance": 0.5}, (1, 8, 8)),
        ("sign_symmetry", {"rule": "usf_flipped", "norm": "sn"}, (1, 8, 8)),
        ("sign_symmetry", {"rule": "feedback_alignment"}, (1, 8, 8)),
        ("moskovitz_cifar", {"width": 8}, (3, 32, 32)),
        ("moskovitz_cifar", {"width": 8, "feedback_signs": "dale"}, (3, 32, 32)),
        (
            "moskovitz_cifar",
            {"width": 8, "rule": "frsf", "norm": "init", "feedback_signs": "dale_learned"},
            (3, 32, 32),
        ),
    ],
)
def test_paper_specs_compile_and_train_a_step(spec, kwargs, shape):
    module = _load(spec)
    model = compile(module.circuit(**kwargs), input_shape=shape, num_classes=10, seed=0)
    x, y = torch.randn(4, *shape), torch.randint(0, 10, (4,))
    F.cross_entropy(model(x), y).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    if kwargs.get("feedback_signs", "concordant") != "concordant":
        for group in model.groups.values():
            assert group.rule.name == "dale_feedback"
            b = group.effective_feedback()
            rows = b.shape[0]
            inh = round(0.2 * rows)
            assert (b[: rows - inh] >= 0).all() and (b[rows - inh :] <= 0).all()


# -- a short training run ------------------------------------------------------------------------
@pytest.mark.slow  # ~25 s on an idle 2-core CPU, most of it fit()'s one-time start-up
def test_usf_learns_like_backprop_and_a_flipped_sign_control_does_not(tmp_path):
    """Liao et al.'s point on the embedded digits: sign-concordant feedback (with batch norm) is
    about as good as backprop; with every sign wrong the hidden areas learn the wrong thing."""
    xr = pytest.importorskip("xarray")
    from biofa import Train
    from biofa.train import fit

    def circuit(rule: str) -> Circuit:
        c = Circuit("digits_mlp")
        c.input("image")
        c.area("h1", Units(64), batch_norm=True)
        c.area("h2", Units(64), batch_norm=True)
        c.readout("out")
        c.connect("image", "h1", dense(flatten=True))
        c.connect("h1", "h2", dense())
        c.connect("h2", "out", dense())
        if rule != "backprop":
            c.feedback_everywhere(rule)
        return c

    accuracy = {}
    for rule in ("backprop", "usf", "usf_flipped"):
        path = fit(
            circuit(rule),
            Train(epochs=3, lr=0.05, record_every=1000, device="cpu"),
            out=tmp_path / f"{rule}.nc",
        )
        with xr.open_dataset(path) as ds:
            assert ds["test_accuracy"].dims == ("rule", "seed", "step")
            accuracy[rule] = float(ds["test_accuracy"].isel(step=-1).squeeze())
    assert accuracy["backprop"] > 0.9
    assert accuracy["usf"] > accuracy["backprop"] - 0.05
    assert min(accuracy["backprop"], accuracy["usf"]) > accuracy["usf_flipped"] + 0.08, accuracy


def test_paper_sweeps_expand_into_valid_runs():
    from biofa.cli.spec import load_spec, run_points
    from biofa.train.config import OPTIMIZERS, Train

    fields = Train.field_names()
    if "manhattan" not in OPTIMIZERS or not {"hold_weight_norms", "normalize_grads"} <= set(fields):
        pytest.skip(
            "Train(optimizer='manhattan', hold_weight_norms, normalize_grads) not wired yet"
        )
    sizes = {}
    for name in ("sign_symmetry", "moskovitz_cifar"):
        points = run_points(load_spec(CIRCUITS / f"{name}.py"), {}, sweep=True)
        assert len({p.name for p in points}) == len(points)
        sizes[name] = len(points)
    assert sizes == {"sign_symmetry": 63, "moskovitz_cifar": 51}


def test_usf_is_rank_one_under_dale_and_delivers_no_error_through_softmax():
    """sign(W) = 1 s^T when the source area is E/I: the documented degenerate case."""
    model = compile(
        mlp("usf", hidden=((Units(5),), (E(4), I(2)))), input_shape=(1, 3, 3), num_classes=4, seed=0
    ).double()
    b = model.groups["h2__to__out"].effective_feedback()
    torch.testing.assert_close(b, torch.tensor([1.0] * 4 + [-1.0] * 2).double().expand_as(b))
    x, y = torch.randn(8, 1, 3, 3, dtype=torch.float64), torch.randint(0, 4, (8,))
    F.cross_entropy(model(x), y).backward()
    assert model.groups["h1__to__h2"].weight.grad.abs().max() < 1e-15
    # random magnitudes break the degeneracy
    model = compile(
        mlp("frsf", hidden=((Units(5),), (E(4), I(2)))),
        input_shape=(1, 3, 3),
        num_classes=4,
        seed=0,
    ).double()
    F.cross_entropy(model(x), y).backward()
    assert model.groups["h1__to__h2"].weight.grad.abs().max() > 1e-6
