"""Population-level circuits in spikes: named populations, within-area (feedforward) inhibition
and sparse masks translated to Brian2, against the rate model they come from.

The circuit: digits (8x8) -> ``v1`` with pyramidal cells ``pyr`` and local PV interneurons
``pv`` (driven by the image, inhibiting ``pyr`` subtractively, read by no other area) ->
readout. The image reaches ``pv`` through a user mask and ``pv`` reaches ``pyr`` with
connection probability ``p``; the plan's drives are checked against the rate model's
pre-activations of every population (no Brian2), the network's synapses against the masks,
and the spikes (numpy target) against the rates.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import biofa
from biofa import Circuit, E, I, dense
from biofa.data import load

pytestmark = pytest.mark.spiking
needs_brian2 = pytest.mark.skipif(
    importlib.util.find_spec("brian2") is None, reason="needs brian2 (pip install biofa[spiking])"
)

PV_MASK = (np.random.default_rng(7).random((8, 64)) < 0.4).astype(np.float32)  # (pv, pixels)


def cortex(mode: str = "subtractive", pv_nonlinearity: str | None = None) -> Circuit:
    c = Circuit("cortex_spiking")
    c.input("image", kind="E")
    c.area("v1", E(32, "pyr"), I(8, "pv", nonlinearity=pv_nonlinearity))
    c.readout("out")
    c.connect("image", "v1.pyr", dense(flatten=True))
    c.connect("image", "v1.pv", dense(flatten=True, mask=PV_MASK))
    c.connect("v1.pv", "v1.pyr", dense(p=0.5), mode=mode)
    c.connect("v1.pyr", "out", dense())
    c.feedback_everywhere("feedback_alignment")
    return c


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.fixture(scope="module")
def trained(digits):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = biofa.compile(
            cortex(), input_shape=digits.input_shape, num_classes=digits.num_classes, seed=0
        )
        opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
        for epoch in range(6):
            for x, y in digits.train_batches(32, seed=0, epoch=epoch):
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def test_plan_drives_reproduce_every_populations_pre_activation(trained, digits):
    """Every source firing at its calibrated rate k h gives each population the drive
    alpha a + beta of its own pre-activation a (the rate model's, read from its forward)."""
    from biofa.spiking.neurons import NEURON_MODELS
    from biofa.spiking.plan import build_plan, normalization_of
    from biofa.spiking.rates import probe

    raw = digits.test_x[:32]
    trace = probe(trained, digits.normalize(raw), digits.test_y[:32])
    plan = build_plan(trained, trace, normalization_of(digits, 1), neuron=NEURON_MODELS["lif"])
    assert not plan.errors  # a population-level circuit: the forward pathway only
    assert set(plan.populations) == {"image", "v1.pyr", "v1.pv", "out"}
    assert {c.name for c in plan.connections} == {
        "image->v1.pyr",
        "image->v1.pv",
        "v1.pv->v1.pyr",
        "v1.pyr->out",
    }
    assert set(plan.calibration) == {"v1.pyr", "v1.pv", "out"}  # v1 is computed per population
    rates = {"image": plan.input_rate * raw.flatten(1).double().numpy()}
    for name in ("v1.pyr", "v1.pv"):
        lo, hi = plan.populations[name].channels
        rates[name] = plan.calibration_of(name).gain * trace.act["v1"][:, lo:hi]
    drive = {}
    for c in plan.connections:
        s = plan.model_of(c.target).weight_scale()
        drive[c.target] = drive.get(c.target, 0.0) + s * rates[c.source] @ c.weight
    for name in ("v1.pyr", "v1.pv", "out"):
        p, cal = plan.populations[name], plan.calibration_of(name)
        lo, hi = p.channels
        expected = cal.drive_gain * trace.pre[p.area][:, lo:hi] + cal.drive_offset
        got = drive[name] + plan.model_of(name).si_params()["R"] * p.bias
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6, err_msg=name)
    # the interneurons inhibit: every pv -> pyr weight <= 0, and some synapses are absent
    (w,) = [c.weight for c in plan.connections if c.name == "v1.pv->v1.pyr"]
    assert (w <= 0).all() and (w == 0).any() and (w < 0).any()


def test_probe_sees_local_interneurons(trained, digits):
    """The area's output is ``pyr`` alone (``pv`` is read only within ``v1``); the trace holds
    both, equal to the model's own populations (its taps)."""
    from biofa.spiking.rates import probe

    x = digits.normalize(digits.test_x[:16])
    seen = {}
    handles = [
        tap.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.detach()))
        for n, tap in trained.areas["v1"].taps.items()
    ]
    try:
        trace = probe(trained, x)
    finally:
        for h in handles:
            h.remove()
    both = torch.cat([seen["pyr"], seen["pv"]], dim=1).double().numpy()
    np.testing.assert_allclose(trace.act["v1"], both, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.maximum(trace.pre["v1"], 0), both, rtol=1e-6, atol=1e-7)
    with torch.no_grad():
        np.testing.assert_allclose(trace.logits, trained(x).double().numpy(), rtol=1e-5, atol=1e-6)


@needs_brian2
@pytest.mark.parametrize("layout", ["merged", "populations"])
def test_synapses_exist_only_where_the_masks_have_them(trained, digits, layout):
    from biofa.spiking import plan_for
    from biofa.spiking.network import SpikingNetwork

    plan = plan_for(trained, digits, calibration_images=64)
    group = trained.groups["v1:pv__to__v1:pyr"]
    signs = group.parametrizations.weight[0].sign  # s * M: the mask folded into the Dale signs
    expected = {
        "image->v1.pv": int(PV_MASK.sum()),  # the user's mask
        "v1.pv->v1.pyr": int((signs != 0).sum()),  # drawn with p = 0.5
        "image->v1.pyr": 32 * 64,
        "v1.pyr->out": 32 * 10,
    }
    assert 0.3 < expected["v1.pv->v1.pyr"] / (8 * 32) < 0.7
    with SpikingNetwork(plan, copies=3, target="numpy", layout=layout) as net:
        for name, count in expected.items():
            key, first, last = net.blocks[name]
            assert last - first == 3 * count, name
        if layout == "populations":  # one NeuronGroup per population, one Synapses per projection
            assert set(net.groups) == {"image", "v1.pyr", "v1.pv", "out"}
            assert set(net.synapses) == set(expected)
            for name, count in expected.items():
                syn = net.synapses[name]
                assert len(syn) == 3 * count, name
                w = np.asarray(syn.w_[:])
                assert (w <= 0).all() if name.startswith("v1.pv") else (w >= 0).all(), name


@needs_brian2
def test_trained_population_circuit_spikes_like_its_rate_model(trained, digits):
    from biofa.spiking import validate

    # Measured (numpy target, 150 of the 360 test digits x 100 ms, training seeds 0 and 1):
    # correlations 0.964-0.979, agreement 0.927-0.933, readout correlation 0.972-0.975,
    # accuracy 0.867-0.887 in spikes against 0.88-0.927 in rates.
    ds = validate(trained, digits, n_images=150, target="numpy", copies=50)
    corr = dict(zip(ds.population.values, ds.rate_correlation.values, strict=True))
    assert set(corr) == {"v1.pyr", "v1.pv"}
    assert min(corr.values()) >= 0.9, corr
    assert float(ds.class_agreement) >= 0.9
    assert float(ds.readout_correlation) >= 0.93
    assert abs(float(ds.accuracy_spiking) - float(ds.accuracy_rate_model)) <= 0.06
    assert "error_correlation" not in ds  # forward only


# -- what is refused, in one line ---------------------------------------------------------------
def _refusal(model, **options) -> str:
    from biofa.spiking.neurons import NEURON_MODELS
    from biofa.spiking.plan import build_plan, normalization_of
    from biofa.spiking.rates import probe

    x = torch.rand(8, *model.input_shape)
    with pytest.raises(ValueError) as info:
        build_plan(model, probe(model, x), normalization_of(None, 1),
                   neuron=NEURON_MODELS["lif"], **options)  # fmt: skip
    text = str(info.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("mode", ["divisive", "subtractive+divisive"])
def test_divisive_inhibition_is_refused_naming_the_projection_and_why(mode):
    model = biofa.compile(cortex(mode=mode), input_shape=(1, 8, 8), num_classes=10)
    text = _refusal(model)
    assert f"projection 'v1.pv->v1.pyr' inhibits divisively (mode={mode!r})" in text
    assert "shunting" in text and "mode='subtractive'" in text


def test_linear_interneurons_are_refused():
    model = biofa.compile(cortex(pv_nonlinearity="identity"), input_shape=(1, 8, 8), num_classes=10)
    assert "population 'v1.pv' has nonlinearity 'identity'" in _refusal(model)


def test_feedback_of_a_population_circuit_is_refused_when_asked_for():
    model = biofa.compile(cortex(), input_shape=(1, 8, 8), num_classes=10)
    text = _refusal(model, feedback=True)
    assert "feedback=True" in text and "'cortex_spiking'" in text and "feedback=False" in text
