"""A Dale's ANN compiled by biofa against a hand-written PyTorch implementation of Cornford et
al.'s equations (fp64): outputs and every gradient, dense and conv; the paper's initialisation;
clamped and parametrized signs; the corrected inhibitory updates."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from biofa import Circuit, E, I, compile, conv, dense
from biofa.circuit.init import constant, exponential, row_mean

pytestmark = pytest.mark.usefixtures("one_thread")


def interneurons(n: int = 1):
    return I(n, "i", nonlinearity="identity", bias=False)


def dann_circuit(spatial: bool, constraint: str = "parametrize", corrected: bool = False):
    """img -> h (E 6 + I 3 local interneurons, subtractive and divisive) -> out (3 + 1 I)."""
    c = Circuit("dann", constraint=constraint)
    c.input("img", kind="E")
    c.area("h", E(6, "e"), interneurons(3))
    c.readout("out", scores="s", interneurons=[interneurons()])
    kind = conv(3) if spatial else dense(flatten=True)
    d = 2 * 9 if spatial else 2 * 4 * 4
    scale = {"lr_scale": 1 / math.sqrt(6)} if corrected else {}
    c.connect("img", "h.e", kind, init=exponential(0.1))
    c.connect("img", "h.i", kind, init=exponential(0.1), **scale)
    c.connect("h.i", "h.e", conv(1) if spatial else dense(), mode="subtractive+divisive",
              init=constant(1 / 3), shunt_gain=math.sqrt((2 * math.pi - 1) / d),
              lr_scale=1 / d if corrected else 1.0,
              shunt_lr_scale=1 / (math.sqrt(6) * d) if corrected else None)  # fmt: skip
    c.connect("h.e", "out.s", dense(flatten=spatial), init=exponential(0.1))
    c.connect("h.e", "out.i", dense(flatten=spatial), init=row_mean("h.e->out.s"))
    c.connect("out.i", "out.s", dense(), mode="subtractive+divisive", init=constant(1.0))
    return c


def leaves(model):
    """The DANN parameters (all >= 0 but alpha and b) as fp64 leaves, read from the model."""
    g = model.groups
    w_h = g["img__to__h:e__and__img__to__h:i"].weight.detach()
    w_out = g["h:e__to__out:s__and__h:e__to__out:i"].weight.detach()
    p = {
        "Wex": w_h[:6], "Wix": w_h[6:], "Wei": -g["h:i__to__h:e"].weight.detach(),
        "alpha": g["h:i__to__h:e"].log_gain.detach(),
        "g": model.areas["h"].gains["e"].detach().abs(), "b": model.areas["h"].biases["e"].detach(),
        "Wex2": w_out[:3], "Wix2": w_out[3:], "Wei2": -g["out:i__to__out:s"].weight.detach(),
        "alpha2": g["out:i__to__out:s"].log_gain.detach(),
        "g2": model.areas["out"].gains["s"].detach().abs(),
        "b2": model.areas["out"].biases["s"].detach(),
    }  # fmt: skip
    return {k: v.clone().requires_grad_(True) for k, v in p.items()}


def dann_layer(x, wex, wix, wei, alpha, g, b, op):
    """Cornford et al. (2021), EiDenseWithShunt: z = g * (z_E - W_EI z_I) / gamma + b."""
    z_e, z_i = op(x, wex), op(x, wix)
    z_hat = z_e - op(z_i, wei)
    gamma = op(torch.exp(alpha).view(1, -1, *[1] * (x.dim() - 2)) * z_i, wei) + 1e-8
    shape = (1, -1, *[1] * (x.dim() - 2))
    return g.view(shape) * z_hat / gamma + b.view(shape)


def reference(x, p, spatial):
    op = (lambda a, w: F.conv2d(a, w, padding=w.shape[-1] // 2)) if spatial else F.linear
    h = F.relu(dann_layer(x if spatial else x.flatten(1), p["Wex"], p["Wix"], p["Wei"],
                          p["alpha"], p["g"], p["b"], op))  # fmt: skip
    return dann_layer(h.flatten(1), p["Wex2"], p["Wix2"], p["Wei2"], p["alpha2"], p["g2"],
                      p["b2"], F.linear)  # fmt: skip


def perturb(model, seed=0):
    """Move every parameter off its initial value (a trained-looking point), keeping signs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, t in model.named_parameters():
            t.mul_(1 + 0.3 * torch.rand(t.shape, generator=gen, dtype=t.dtype))


def grads_of(model):
    g = model.groups
    return {
        "Wex": g["img__to__h:e__and__img__to__h:i"].parametrizations.weight.original.grad[:6],
        "Wix": g["img__to__h:e__and__img__to__h:i"].parametrizations.weight.original.grad[6:],
        "Wei": g["h:i__to__h:e"].parametrizations.weight.original.grad,
        "alpha": g["h:i__to__h:e"].log_gain.grad,
        "g": model.areas["h"].gains["e"].grad, "b": model.areas["h"].biases["e"].grad,
        "Wex2": g["h:e__to__out:s__and__h:e__to__out:i"].parametrizations.weight.original.grad[:3],
        "Wix2": g["h:e__to__out:s__and__h:e__to__out:i"].parametrizations.weight.original.grad[3:],
        "Wei2": g["out:i__to__out:s"].parametrizations.weight.original.grad,
        "alpha2": g["out:i__to__out:s"].log_gain.grad,
        "g2": model.areas["out"].gains["s"].grad, "b2": model.areas["out"].biases["s"].grad,
    }  # fmt: skip


@pytest.mark.parametrize("spatial", [False, True], ids=["dense", "conv"])
def test_dann_equals_the_papers_equations_outputs_and_gradients_fp64(spatial):
    model = compile(dann_circuit(spatial), input_shape=(2, 4, 4), num_classes=3, seed=1).double()
    perturb(model)
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(5, 2, 4, 4, generator=gen, dtype=torch.float64)  # pixels: non-negative
    y = torch.tensor([0, 1, 2, 1, 0])
    p = leaves(model)
    out, ref = model(x), reference(x, p, spatial)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    F.cross_entropy(out, y).backward()
    F.cross_entropy(ref, y).backward()
    for name, grad in grads_of(model).items():
        # W = s|V| with V = sW >= 0, so dL/dV = s dL/dW: dL/dW_EE for E, dL/dW_EI for W = -W_EI
        torch.testing.assert_close(grad, p[name].grad, rtol=0, atol=1e-8, msg=name)


def test_the_papers_initialisation():
    """W_EE, W_IE exponential; W_EI = 1/n_I; the output interneuron subtracts the mean drive;
    e^alpha as declared; g = 1, b = 0 (Cornford et al.'s code, linclab/ltlwdp)."""
    model = compile(dann_circuit(False), input_shape=(2, 4, 4), num_classes=3, seed=0)
    p = leaves(model)
    assert (p["Wex"] > 0).all() and (p["Wix"] > 0).all()
    torch.testing.assert_close(p["Wei"], torch.full((6, 3), 1 / 3))
    torch.testing.assert_close(p["Wix2"], p["Wex2"].mean(0, keepdim=True))
    torch.testing.assert_close(p["Wei2"], torch.ones(3, 1))
    torch.testing.assert_close(
        p["alpha"].exp(), torch.full((3,), math.sqrt((2 * math.pi - 1) / 32))
    )
    assert (p["g"] == 1).all() and (p["b"] == 0).all()
    big = compile(dann_circuit(False), input_shape=(2, 40, 40), num_classes=3, seed=0)
    w = leaves(big)["Wex"].detach()
    assert abs(float(w.mean()) - 0.1) < 0.01 and abs(float(w.std()) - 0.1) < 0.01  # Exp(0.1)
    # centred: with the output interneuron, every example's scores have zero mean before division
    x = torch.rand(4, 2, 4, 4)
    h = torch.relu(torch.randn(4, 6))
    z_hat = h @ p["Wex2"].t() - (h @ p["Wix2"].t()) @ p["Wei2"].t()
    torch.testing.assert_close(z_hat.detach().mean(1), torch.zeros(4), atol=1e-6, rtol=0)
    assert model(x).shape == (4, 3)


def test_clamped_signs_follow_the_authors_projected_sgd():
    """Circuit(constraint="clamp"): one SGD step then max(., 0), exactly what the authors' code
    does to W_EE, W_IE, W_EI and g (alpha and b free), against a hand-written step."""
    model = compile(dann_circuit(False, "clamp"), input_shape=(2, 4, 4), num_classes=3).double()
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(8, 2, 4, 4, generator=gen, dtype=torch.float64)
    y = torch.arange(8) % 3
    lr = 3.0  # large enough to drive some weights below zero
    p = leaves(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    model.after_step(1, 0)
    F.cross_entropy(reference(x, p, False), y).backward()
    with torch.no_grad():
        for name, t in p.items():
            t -= lr * t.grad
            if not name.startswith(("alpha", "b")):
                t.clamp_(min=0)
    after = leaves(model)
    clamped = 0
    for name, t in p.items():
        torch.testing.assert_close(after[name], t, rtol=0, atol=1e-10, msg=name)
        clamped += int((t == 0).sum())
    assert clamped > 0, "the step should have clamped some weights"


def test_corrected_updates_scale_the_inhibitory_gradients():
    """lr_scale on the projections into and out of the interneurons divides their gradients
    (W_IE by sqrt(n_E), W_EI by d, alpha by sqrt(n_E) d), nothing else."""
    plain = compile(dann_circuit(False), input_shape=(2, 4, 4), num_classes=3).double()
    fixed = compile(dann_circuit(False, corrected=True), input_shape=(2, 4, 4), num_classes=3)
    fixed = fixed.double()
    x, y = torch.rand(4, 2, 4, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    for m in (plain, fixed):
        F.cross_entropy(m(x), y).backward()
    a, b = grads_of(plain), grads_of(fixed)
    factor = {"Wix": 1 / math.sqrt(6), "Wei": 1 / 32, "alpha": 1 / (math.sqrt(6) * 32)}
    for name in a:
        # the factors are float32 buffers (the model was built in float32)
        torch.testing.assert_close(b[name], a[name] * factor.get(name, 1.0), rtol=1e-6, atol=0)
