"""``analyses/dann_gradients.py``: the hidden-area gradient norms it compares, against facts
derived by hand."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch

from biofa import compile

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tool():
    return runpy.run_path(str(ROOT / "analyses" / "dann_gradients.py"))


def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(32, 1, 28, 28, generator=g), torch.randint(0, 10, (32,), generator=g)


def test_usf_under_dale_delivers_no_error_through_a_softmax_readout(tool):
    """Column E/I: every weight leaving ``h3`` has its population's sign, so uSF's ``B`` is
    ``kappa 1 s^T`` and ``h3`` receives ``kappa s_j sum_i delta_i = 0`` (softmax errors sum to
    zero): nothing but rounding, whatever ``norm``."""
    spec = tool["_spec"]()
    x, y = batch()
    small = dict(width=20, interneurons=4)
    ref = tool["hidden_gradient_norms"](spec.circuit("column_ei", "backprop", **small), x, y)
    assert set(ref) == {"h1", "h2", "h3"} and all(v > 1e-3 for v in ref.values())
    for norm in ("none", "init"):
        got = tool["hidden_gradient_norms"](
            spec.circuit("column_ei", "usf", sign_norm=norm, **small), x, y
        )
        assert got["h3"] / ref["h3"] < 1e-5, norm


def test_backprop_norms_are_autograds(tool):
    """The MLP's backprop norms are those of torch autograd through the same compiled net."""
    spec = tool["_spec"]()
    x, y = batch()
    c = spec.circuit("mlp", "backprop", width=16)
    got = tool["hidden_gradient_norms"](c, x, y)
    model = compile(c, input_shape=(1, 28, 28), num_classes=10, seed=0)
    params = dict(model.named_parameters())
    names = {a: [n for n in params if n.startswith("groups.") and f"__to__{a}" in n
                 and "weight" in n] for a in ("h1", "h2", "h3")}  # fmt: skip
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, [params[n] for a in names for n in names[a]])
    k = 0
    for a in ("h1", "h2", "h3"):
        want = torch.cat([g.flatten() for g in grads[k : k + len(names[a])]]).norm()
        k += len(names[a])
        assert got[a] == pytest.approx(float(want), rel=1e-6)
