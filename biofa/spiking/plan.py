"""Translate a trained compiled circuit into a plan: populations, signed weights, currents.

The plan holds everything the Brian2 network needs as numpy arrays in SI units, and nothing of
Brian2, so it can be checked without simulating. For a rate model with ReLU areas

.. math:: h_l = \\max(0, a_l), \\qquad a_l = \\sum_{m \\to l} W_{lm} h_m + b_l,

each population of area :math:`l` becomes neurons driven by :math:`u = \\alpha_l a + \\beta_l`
(:mod:`biofa.spiking.calibrate`); a presynaptic population firing at :math:`k_m h_m` reaches them
through weights :math:`w = \\alpha_l W_{lm} / (s\\,k_m)` and the bias is the constant current
:math:`(\\alpha_l b_l + \\beta_l)/R`. Input pixels :math:`x \\in [0, 1]` fire at
:math:`r_{in} x`; the data set's normalisation :math:`\\hat x = x/\\sigma_c - \\mu_c/\\sigma_c` is
folded into the first weights and biases (:math:`W' = W/\\sigma_c`,
:math:`b' = b - W\\mu_c/\\sigma_c`), which keeps their signs. The linear readout integrates
:math:`V - E_L = \\alpha_z (W h + b)` on a non-spiking membrane (``readout="voltage"``) or fires
like a hidden area at :math:`k \\max(0, z - m)` with :math:`m` a low percentile of the logits
(``readout="spikes"``).

Errors are signed, rates are not: the readout error :math:`e` is carried by two Poisson
populations firing at :math:`r_e \\max(0, \\pm e)`, and the error delivered to each hidden
population by a pair of populations ``<pop>.err+`` / ``<pop>.err-`` calibrated on
:math:`\\pm\\delta`. A feedback matrix :math:`B` (``effective_feedback``, shape of :math:`W`, or a
direct rule's ``deliver``) connects pair to pair with weights :math:`\\pm B` (``+`` between
populations of equal polarity). An error population whose area passes its error further down is
*gated*: its synapses transmit only after its forward twin has fired (:math:`f'(a) = [a > 0]`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from biofa.nn import CompiledCircuit
from biofa.spiking.calibrate import Calibration, fit, rate_function
from biofa.spiking.feedback import add_feedback
from biofa.spiking.layout import Connection, Plan, Population
from biofa.spiking.neurons import READOUT_MODEL, NeuronModel
from biofa.spiking.rates import RateTrace
from biofa.spiking.support import check_supported

__all__ = ["Connection", "Plan", "Population", "build_plan", "normalization_of"]


def build_plan(
    model: CompiledCircuit,
    trace: RateTrace,
    normalization: tuple[np.ndarray, np.ndarray],
    *,
    neuron: NeuronModel,
    readout: str = "voltage",
    encoding: str = "poisson",
    max_rate: float = 200.0,
    input_rate: float | None = None,
    input_total_rate: float = 20000.0,
    mean_input: float | None = None,
    error_rate: float = 500.0,
    readout_range: float = 0.01,
    percentile: float = 99.5,
    feedback: bool = True,
    error_synapses: str = "signed",
    max_neurons: int = 5000,
    error_trace: RateTrace | None = None,
) -> Plan:
    """The plan for ``model``, calibrated on ``trace`` (the rate model on calibration images).

    ``normalization`` is ``(scale, offset)`` per input channel: the model sees
    ``scale * x + offset`` for pixel intensities ``x`` in [0, 1]. Rates in Hz, ``readout_range``
    in volt (the readout potential of the ``percentile``-th percentile of ``|logits|``).
    ``input_rate`` (Hz at intensity 1) defaults to ``input_total_rate / mean_input``, with
    ``mean_input`` the summed intensity of the mean calibration image: every data set then sends
    about the same number of input spikes per image (and the same Poisson noise), whatever its
    size; ``error_rate`` is Hz per unit of readout error (at most 1 in magnitude).
    ``error_trace`` (default ``trace``) calibrates the error populations: the same images with
    the errors the feedback pathways should carry. ``error_synapses``: ``"signed"`` (an error
    neuron's synapses carry ``B``'s signs) or ``"excitatory"`` (Dale's law for error neurons:
    every feedback synapse >= 0; see :func:`biofa.spiking.feedback.add_feedback`).
    """
    check_supported(model, max_neurons)
    for name, value, allowed in (
        ("readout", readout, ("voltage", "spikes")),
        ("encoding", encoding, ("poisson", "current")),
        ("error_synapses", error_synapses, ("signed", "excitatory")),
    ):
        if value not in allowed:
            raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    circuit = model.circuit
    rate = rate_function(neuron)
    readout_model = READOUT_MODEL if readout == "voltage" else neuron
    inp, out = circuit.input_area.name, circuit.readout_area.name
    cal: dict[str, Calibration] = {}
    for name in model.order[1:]:
        if name != out:
            cal[name] = fit(trace.pre[name], rate, max_rate, percentile)
    shift = 0.0
    if readout == "voltage":
        span = float(np.percentile(np.abs(trace.logits), percentile)) or 1.0
        cal[out] = Calibration(math.nan, readout_range / span, 0.0, span, 0.0)
    else:
        shift = float(np.percentile(trace.logits, 100 - percentile))
        cal[out] = fit(trace.logits - shift, rate, max_rate, percentile)
    if input_rate is None:  # pixels of the mean calibration image fire input_total_rate in all
        mean_input = mean_input or 0.5 * math.prod(model.input_shape)
        input_rate = input_total_rate / mean_input
    gain = {inp: input_rate, **{n: c.gain for n, c in cal.items()}}

    pops: dict[str, Population] = {}
    forward: dict[str, list[str]] = {}
    n_in = math.prod(model.input_shape)
    pops[inp] = Population(
        inp,
        inp,
        "poisson" if encoding == "poisson" else "current",
        "input",
        n_in,
        circuit.input_area.populations[0].sign,
        np.zeros(n_in),
        (0, n_in),
    )
    forward[inp] = [inp]
    bias = {n: _bias(model, n) for n in model.order[1:]}
    scale_in, offset_in = (
        np.repeat(np.asarray(v, np.float64), n_in // model.input_shape[0]) for v in normalization
    )
    connections: list[Connection] = []
    for group in model.groups.values():
        weight = group.weight.detach().double().cpu().numpy()
        for s in group.slices:
            w = weight[:, s.start : s.stop]
            if s.source == inp:  # fold the input normalisation into weights and bias
                bias[s.target] = bias[s.target] + w @ offset_in
                w = w * scale_in
            target_model = readout_model if s.target == out else neuron
            factor = cal[s.target].drive_gain / (gain[s.source] * target_model.weight_scale())
            connections += _blocks(model, s.source, s.target, factor * w.T, "forward", s.projection)
    for name in model.order[1:]:
        role = "readout" if name == out else "hidden"
        kind = "readout" if readout == "voltage" and role == "readout" else "neuron"
        resistance = (readout_model if role == "readout" else neuron).si_params()["R"]
        b = bias[name] - (shift if role == "readout" else 0.0)
        current = (cal[name].drive_gain * b + cal[name].drive_offset) / resistance
        forward[name] = []
        for pname, lo, hi, sign in _populations(model, name):
            pops[pname] = Population(
                pname, name, kind, role, hi - lo, sign, current[lo:hi], (lo, hi)
            )
            forward[name].append(pname)
    plan = Plan(
        circuit=circuit.name, neuron=neuron, readout_model=readout_model, readout=readout,
        encoding=encoding, input_area=inp, readout_area=out, populations=pops,
        connections=connections, calibration=cal, input_rate=input_rate, error_rate=error_rate,
        readout_shift=shift, forward=forward,
    )  # fmt: skip
    if feedback:
        add_feedback(plan, model, error_trace or trace, rate, max_rate, percentile, error_synapses)
    return plan


def _bias(model: CompiledCircuit, area: str) -> np.ndarray:
    b = model.areas[area].bias
    n = model.shapes[area].out[0]
    return np.zeros(n) if b is None else b.detach().double().cpu().numpy()


def _populations(model: CompiledCircuit, area: str) -> list[tuple[str, int, int, int]]:
    """``(name, first channel, last channel + 1, sign)`` of each population of ``area``."""
    a = model.circuit.areas[area]
    if a.role == "readout":
        return [(area, 0, model.num_classes, 0)]
    kinds = [p.kind for p in a.populations]
    out, start = [], 0
    for i, p in enumerate(a.populations):
        suffix = p.kind if kinds.count(p.kind) == 1 else f"{p.kind}{kinds[:i].count(p.kind)}"
        out.append((f"{area}.{suffix}", start, start + p.size, p.sign))
        start += p.size
    return out


def _blocks(
    model: CompiledCircuit, source: str, target: str, matrix: np.ndarray, pathway: str, via: str
) -> list[Connection]:
    """Split ``matrix`` (source units x target units, one copy) into population blocks."""
    is_input = model.circuit.areas[source].role == "input"
    sources = [(source, 0, matrix.shape[0], 0)] if is_input else _populations(model, source)
    out = []
    for sname, s0, s1, _ in sources:
        for tname, t0, t1, _ in _populations(model, target):
            out.append(Connection(sname, tname, matrix[s0:s1, t0:t1], pathway, via))
    return out


def normalization_of(data, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, offset)`` per channel of ``data.normalize`` for intensities in [0, 1]."""
    if data is None:
        return np.ones(channels), np.zeros(channels)
    x = torch.zeros(2, channels, 1, 1)
    x[1] = 1.0
    y = data.normalize(x).double().flatten(1).numpy()
    return y[1] - y[0], y[0]
