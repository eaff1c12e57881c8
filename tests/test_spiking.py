"""The Brian2 spiking back-end against hand computations and against the rate model it translates.

Fast enough for the default run with Brian2's numpy target (marked ``spiking``); the compiled
standalone target is exercised under ``slow``.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import biofa
from biofa import Circuit, E, I, Units, conv, dense
from biofa.data import load

pytestmark = pytest.mark.spiking
needs_brian2 = pytest.mark.skipif(
    importlib.util.find_spec("brian2") is None, reason="needs brian2 (pip install biofa[spiking])"
)


def ei_mlp(depth: int = 1, rule: str = "feedback_alignment", width: int = 64) -> Circuit:
    c = Circuit("ei_mlp_spiking")
    c.input("image", kind="E")  # pixels excite: Dale's law from the first synapse on
    previous = "image"
    for k in range(1, depth + 1):
        c.area(f"h{k}", E(width), I(width // 4))
        c.connect(previous, f"h{k}", dense(flatten=k == 1))
        previous = f"h{k}"
    c.readout("out")
    c.connect(previous, "out", dense())
    c.feedback_everywhere(rule)
    return c


def train(circuit: Circuit, data, epochs: int, seed: int = 0) -> biofa.CompiledCircuit:
    """A plain SGD loop on cross-entropy (one thread: the CI machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = biofa.compile(
            circuit, input_shape=data.input_shape, num_classes=data.num_classes, seed=seed
        )
        opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
        for epoch in range(epochs):
            for x, y in data.train_batches(32, seed=seed, epoch=epoch):
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.fixture(scope="module")
def trained(digits):
    return train(ei_mlp(), digits, epochs=8)


@pytest.fixture(scope="module")
def validation(trained, digits):
    from biofa.spiking import validate

    return validate(trained, digits, n_images=200, target="numpy")


# -- single neuron ------------------------------------------------------------------------------
@needs_brian2
def test_lif_fires_at_the_analytic_rate():
    from biofa.spiking.calibrate import measure_rate
    from biofa.spiking.neurons import NEURON_MODELS

    # Table values: tau_m 20 ms, t_ref 2 ms, E_L = V_reset = -65 mV, V_th = -50 mV, R = 100 Mohm.
    tau, t_ref, d_reset, d_th, r = 20e-3, 2e-3, 0.0, 15e-3, 100e6
    currents = np.array([200e-12, 300e-12, 600e-12])  # R I = 20, 30, 60 mV
    ri = r * currents
    expected = 1 / (t_ref + tau * np.log((ri - d_reset) / (ri - d_th)))
    # by hand: 1 / (2 ms + 20 ms ln(20/5)), 1 / (2 ms + 20 ms ln 2), 1 / (2 ms + 20 ms ln(60/45))
    np.testing.assert_allclose(expected, [33.64, 63.04, 128.97], rtol=1e-3)
    _, measured = measure_rate(NEURON_MODELS["lif"], ri, duration=0.2)  # regular: a few ISIs
    np.testing.assert_allclose(measured, expected, rtol=0.02)


# -- translation (no Brian2) --------------------------------------------------------------------
def _implied_drives(plan, trace, raw):
    """Mean drive u = R I (volt) each population gets if every source fired at its calibrated rate.

    Sources fire at k * h (forward), r_e * max(0, +-e) (readout error) and k * max(0, +-delta)
    (hidden errors, times f'(a) = [a > 0] for gated ones); synapses add s * w * rate.
    """
    rates = {plan.input_area: plan.input_rate * raw}
    for area, pops in plan.forward.items():
        for name in pops if area != plan.input_area else ():
            lo, hi = plan.populations[name].channels
            rates[name] = plan.calibration[area].gain * np.maximum(trace.act[area][:, lo:hi], 0)
    for name, sign in zip(plan.errors[plan.readout_area][0], (1, -1), strict=True):
        rates[name] = plan.error_rate * np.maximum(sign * trace.output_error, 0)
    for area, pairs in plan.errors.items():
        for pair in pairs if area != plan.readout_area else ():
            lo, hi = plan.populations[pair[0]].channels
            gate = (trace.pre[area][:, lo:hi] > 0) if plan.populations[pair[0]].gated else 1.0
            for name, sign in zip(pair, (1, -1), strict=True):
                delta = np.maximum(sign * trace.error[area][:, lo:hi], 0) * gate
                rates[name] = plan.calibration[f"{area}.err"].gain * delta
    drive = {}
    for c in plan.connections:
        s = plan.model_of(c.target).weight_scale()
        drive[c.target] = drive.get(c.target, 0.0) + s * rates[c.source] @ c.weight
    for name, p in plan.populations.items():
        if name in drive:
            drive[name] = drive[name] + plan.model_of(name).si_params()["R"] * p.bias
    return drive


@pytest.mark.parametrize("rule", ["feedback_alignment", "direct_feedback_alignment"])
def test_plan_weights_reproduce_the_rate_model_drives(digits, rule):
    from biofa.spiking.neurons import NEURON_MODELS
    from biofa.spiking.plan import build_plan, normalization_of
    from biofa.spiking.rates import probe

    model = biofa.compile(
        ei_mlp(depth=2, rule=rule, width=16), input_shape=(1, 8, 8), num_classes=10, seed=3
    )
    raw = digits.test_x[:32]
    trace = probe(model, digits.normalize(raw), digits.test_y[:32])
    plan = build_plan(model, trace, normalization_of(digits, 1), neuron=NEURON_MODELS["lif"])
    drive = _implied_drives(plan, trace, raw.flatten(1).double().numpy())
    for name, p in plan.populations.items():
        if p.kind in ("poisson", "current"):
            continue
        key = f"{p.area}.err" if p.role == "error" else p.area
        cal, (lo, hi) = plan.calibration[key], p.channels
        a = trace.error[p.area] * p.polarity if p.role == "error" else trace.pre[p.area]
        np.testing.assert_allclose(
            drive[name],
            cal.drive_gain * a[:, lo:hi] + cal.drive_offset,
            rtol=1e-4,
            atol=1e-6,
            err_msg=name,
        )  # float32 model, volt
    gated = {p.name for p in plan.populations.values() if p.gated}
    assert (gated == {"h2.E.err+", "h2.E.err-", "h2.I.err+", "h2.I.err-"}) == (
        rule == "feedback_alignment"
    )


# -- the Brian2 network -------------------------------------------------------------------------
@needs_brian2
@pytest.mark.parametrize("layout", ["merged", "populations"])
def test_dale_law_holds_in_every_synapse(trained, digits, layout):
    from biofa.spiking import plan_for
    from biofa.spiking.network import SpikingNetwork

    plan = plan_for(trained, digits)
    seen = set()
    with SpikingNetwork(plan, copies=2, target="numpy", layout=layout) as net:
        for key, syn in net.synapses.items():
            if "=>" in key:  # gate synapses carry no weight
                continue
            source, index, w = key.split("->")[0], np.asarray(syn.i[:]), np.asarray(syn.w_[:])
            assert len(w) > 0
            for pop, offset, size in net.layout.rows[source]:
                mine = w[(index >= offset) & (index < offset + net.copies * size)]
                sign = plan.populations[pop].sign
                if sign > 0:
                    assert (mine >= 0).all() and (mine > 0).any(), pop
                elif sign < 0:
                    assert (mine <= 0).all() and (mine < 0).any(), pop
                seen.add(sign)
    assert {1, -1} <= seen  # E (input and h1.E) and I populations were both checked


@needs_brian2
def test_trained_ei_mlp_spikes_like_its_rate_model(validation):
    # Measured (numpy target, 200 of the 360 test digits x 100 ms, LIF; seeds 0-2 of the subset
    # and of Brian2): correlations 0.973-0.976, agreement 0.955-0.97, readout correlation
    # 0.979-0.982, accuracy 0.88-0.895 in spikes against 0.895-0.925 in rates.
    corr = dict(zip(validation.population.values, validation.rate_correlation.values, strict=True))
    assert set(corr) == {"h1.E", "h1.I"}
    assert min(corr.values()) >= 0.95, corr
    assert float(validation.class_agreement) >= 0.93
    assert float(validation.readout_correlation) >= 0.95
    assert abs(float(validation.accuracy_spiking) - float(validation.accuracy_rate_model)) <= 0.05


def test_excitatory_error_synapses_keep_dales_law_and_the_signed_error(trained, digits):
    """``error_synapses="excitatory"``: every feedback synapse >= 0, and the pair difference of
    the drive still equals the signed routing's (``B+ - B-`` = ``B``), hand-checked per block."""
    from biofa.spiking import plan_for

    signed = plan_for(trained, digits)
    dale = plan_for(trained, digits, error_synapses="excitatory")
    fb_signed, fb_dale = (
        {(c.source, c.target): c.weight for c in plan.connections if c.pathway == "feedback"}
        for plan in (signed, dale)
    )
    assert fb_signed.keys() == fb_dale.keys() and fb_dale
    assert all((w >= 0).all() for w in fb_dale.values())
    assert any((w < 0).any() for w in fb_signed.values())
    for (src, dst), w in fb_signed.items():  # + -> +: max(B, 0); - -> +: max(-B, 0) ...
        np.testing.assert_array_equal(fb_dale[src, dst], np.maximum(w, 0.0))
    for src in {s for s, _ in fb_dale}:  # ... so (+ target) - (- target) receives B from each side
        targets = sorted(d for s, d in fb_dale if s == src)
        for plus, minus in zip(targets[::2], targets[1::2], strict=True):
            assert plus.endswith("err+") and minus.endswith("err-")
            np.testing.assert_allclose(
                fb_dale[src, plus] - fb_dale[src, minus], fb_signed[src, plus], atol=0
            )
    with pytest.raises(ValueError, match="error_synapses='x' is not one of signed, excitatory"):
        plan_for(trained, digits, error_synapses="x")


@needs_brian2
def test_spiking_feedback_delivers_the_rate_model_error(validation):
    # Measured: 0.957-0.961 for the error e B delivered to h1 (e = softmax - onehot(label)).
    assert list(validation.error_area.values) == ["h1"]
    assert float(validation.error_correlation.sel(error_area="h1")) >= 0.93
    pos, neg = validation.error_rate_positive.values, validation.error_rate_negative.values
    assert (pos >= 0).all() and (neg >= 0).all() and pos.max() > 50 and neg.max() > 50


@needs_brian2
def test_dataset_schema_and_atomic_netcdf(validation, tmp_path):
    import xarray as xr

    from biofa.spiking import write_netcdf

    assert list(validation.dims)[0] == "time"
    assert validation.population_rate.dims == ("time", "image", "population")
    assert validation.time.attrs["units"] == "s" and validation.spiking_rate.attrs["units"] == "Hz"
    for name, var in {**validation.data_vars, **validation.coords}.items():
        assert var.attrs.get("long_name") and "units" in var.attrs, name
    counts = validation.spike_count.values
    np.testing.assert_allclose(validation.spiking_rate.values, counts / 0.08)
    path = write_netcdf(validation, tmp_path / "runs" / "spiking.nc")
    assert sorted(p.name for p in path.parent.iterdir()) == ["spiking.nc"]  # no temporary left
    with xr.open_dataset(path) as back:
        np.testing.assert_array_equal(back.spike_count.values, counts)
        assert back.attrs["codegen_target"] == "numpy"


@needs_brian2
def test_other_neuron_readout_input_and_layout_options(trained, digits):
    from biofa.spiking import validate

    ds = validate(
        trained,
        digits,
        n_images=40,
        target="numpy",
        neuron="lif_exp",
        readout="spikes",
        encoding="current",
        layout="populations",
    )
    assert ds.attrs["readout"] == "spikes" and "h1.E" in ds.population.values
    assert ds.rate_correlation.values.min() >= 0.9 and float(ds.class_agreement) >= 0.85


@needs_brian2
def test_to_brian2_compiles_an_undeclared_circuit(digits):
    # what compile(circuit, backend="brian2", input_shape=..., num_classes=...) dispatches to
    from biofa.spiking import to_brian2

    with to_brian2(
        ei_mlp(width=8), input_shape=(1, 8, 8), num_classes=10, target="numpy", copies=2
    ) as net:
        assert {"h1.E", "h1.I", "out.err+", "h1.E.err-"} <= set(net.views)
        record = net.run(digits.test_x[:3].flatten(1).numpy())
    assert record.rates("h1.E").shape == (3, 8) and record.readout_potential.shape == (3, 10)


# -- refusals and installation ------------------------------------------------------------------
def _unsupported(kind: str) -> Circuit:
    c = Circuit("refused")
    c.input("image")
    c.readout("out")
    if kind == "conv":
        c.area("v1", E(4), I(2))
        c.connect("image", "v1", conv(3))
        c.connect("v1", "out", dense(flatten=True))
        return c
    options = {"tanh": {"nonlinearity": "tanh"}, "batch_norm": {"batch_norm": True}}.get(kind, {})
    c.area("h", Units(3000 if kind == "too_big" else 8), **options)
    c.connect("image", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    return c


@pytest.mark.parametrize(
    "kind, why",
    [
        ("conv", "is conv2d"),
        ("tanh", "nonlinearity 'tanh'"),
        ("batch_norm", "batch norm"),
        ("too_big", "max_neurons"),
    ],
)
def test_unsupported_circuits_are_refused_with_reasons(kind, why):
    from biofa.spiking import plan_for

    model = biofa.compile(_unsupported(kind), input_shape=(1, 8, 8), num_classes=10, seed=0)
    with pytest.raises(ValueError, match=why) as info:
        plan_for(model)
    assert "supported: dense circuits" in str(info.value)


def test_missing_brian2_raises_import_error_with_install_hint(monkeypatch):
    from biofa.spiking import to_brian2

    monkeypatch.setitem(sys.modules, "brian2", None)
    model = biofa.compile(ei_mlp(width=4), input_shape=(1, 8, 8), num_classes=10, seed=0)
    with pytest.raises(ImportError, match=r"pip install biofa\[spiking\]"):
        to_brian2(model)


def test_biofa_imports_without_brian2():
    code = (
        "import sys; sys.modules['brian2'] = None; import biofa, biofa.spiking; "
        "assert biofa.spiking.validate"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- compiled target ----------------------------------------------------------------------------
@needs_brian2
@pytest.mark.slow
def test_cpp_standalone_is_rerun_with_new_inputs(trained, digits, tmp_path, monkeypatch):
    from biofa.spiking import plan_for
    from biofa.spiking.build import _make_compiler_is_gcc
    from biofa.spiking.network import SpikingNetwork
    from biofa.spiking.targets import compiler

    if compiler() is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("BIOFA_CACHE", str(tmp_path))
    plan = plan_for(trained, digits)
    images = (digits.test_x[:100].flatten(1)).double().numpy()
    with SpikingNetwork(plan, copies=50, segments=1, target="cpp_standalone") as net:
        assert net.target == "cpp_standalone"
        if _make_compiler_is_gcc():  # objects.h was precompiled, used, then removed
            assert "-include objects.h" in (net.directory / "makefile").read_text()
            assert (net.directory / "biofa.mk").exists()
            assert not (net.directory / "make.deps").exists()  # no serial dependency pass
        assert not (net.directory / "objects.h.gch").exists()
        first = net.run(images[:50])
        second = net.run(images[50:])  # the same program, new inputs through run_args
        assert math.isclose(first.rates("h1.E").mean(), second.rates("h1.E").mean(), rel_tol=0.3)
    with SpikingNetwork(plan, copies=50, segments=1, target="numpy") as net:
        reference = net.run(images[50:])
    a, b = second.rates("h1.E"), reference.rates("h1.E")
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


@needs_brian2
@pytest.mark.slow
def test_second_network_in_one_process_reuses_the_standalone_build(trained, digits, tmp_path,
                                                                    monkeypatch):
    """Brian2 names objects uniquely among the living ones: if the first network's code objects
    outlived it, the second would be generated as ``*_codeobject_1`` and compiled again."""
    from biofa.spiking import plan_for
    from biofa.spiking.network import SpikingNetwork
    from biofa.spiking.targets import compiler

    if compiler() is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("BIOFA_CACHE", str(tmp_path))
    plan = plan_for(trained, digits)
    with SpikingNetwork(plan, copies=10, segments=1, target="cpp_standalone") as net:
        program = net.directory / "main"
        built = program.stat().st_mtime_ns
    with SpikingNetwork(plan, copies=10, segments=1, target="cpp_standalone") as net:
        assert net.directory == program.parent
        assert not list((net.directory / "code_objects").glob("*_1.cpp"))
        assert program.stat().st_mtime_ns == built  # make found nothing to rebuild
