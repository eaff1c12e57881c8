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

Connections come from the blocks of each projection group (``group.spec.blocks``: a projection's
source and target population pairs and where they sit in the batched weight), so a circuit wired
population to population (projections between populations, within-area inhibition, masks) gives
synapses for exactly the pairs and the synapses it has; the populations of an area computed in
stages (:class:`~biofa.nn.staged.StagedArea`) are calibrated one by one (:func:`cal_key`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from biofa.circuit.wiring import spans
from biofa.nn import CompiledCircuit
from biofa.spiking.calibrate import Calibration, fit, rate_function
from biofa.spiking.feedback import add_feedback
from biofa.spiking.layout import Connection, Plan, Population
from biofa.spiking.neurons import READOUT_MODEL, NeuronModel
from biofa.spiking.rates import RateTrace
from biofa.spiking.support import check_supported, population_level

__all__ = ["Connection", "Plan", "Population", "build_plan", "cal_key", "normalization_of"]


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
    feedback: bool | None = None,
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
    ``feedback`` (default: for area-to-area circuits) adds the feedback pathways; a
    population-level circuit (:func:`~biofa.spiking.support.population_level`) is translated
    forward only, and ``feedback=True`` for one is refused.
    """
    check_supported(model, max_neurons)
    populations = population_level(model)
    if feedback and populations:
        raise ValueError(
            f"feedback=True: the feedback pathways of population-level circuit "
            f"{model.circuit.name!r} have no spiking translation yet (errors reaching local "
            "interneurons within an area, feedback through masks and to single populations); "
            "its forward pathway is translated with feedback=False"
        )
    feedback = not populations if feedback is None else feedback
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
        if name == out:
            continue
        for pname, lo, hi, _ in _populations(model, name):
            key = cal_key(model, pname)
            if key not in cal:  # an area's populations share one pre-activation unless staged
                pre = trace.pre[name] if key == name else trace.pre[name][:, lo:hi]
                cal[key] = fit(pre, rate, max_rate, percentile)
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
        target, (row0, _) = group.spec.target, group.spec.rows
        target_model = readout_model if target == out else neuron
        for b in group.spec.blocks:  # a projection: its (source, target) population pairs
            for sname, c0, c1 in b.columns:
                source = inp if b.projection.source_area == inp else sname
                for tname, r0, r1 in b.rows:
                    tname = out if target == out else tname
                    lo, hi = row0 + r0, row0 + r1  # the target population's channels
                    w = weight[r0:r1, c0:c1]
                    if source == inp:  # fold the input normalisation into weights and bias
                        bias[target][lo:hi] += w @ offset_in
                        w = w * scale_in
                    factor = cal[cal_key(model, tname)].drive_gain / (
                        gain[cal_key(model, source)] * target_model.weight_scale()
                    )
                    connections.append(
                        Connection(source, tname, factor * w.T, "forward", b.projection.name)
                    )
    for name in model.order[1:]:
        role = "readout" if name == out else "hidden"
        kind = "readout" if readout == "voltage" and role == "readout" else "neuron"
        resistance = (readout_model if role == "readout" else neuron).si_params()["R"]
        b = bias[name] - (shift if role == "readout" else 0.0)
        forward[name] = []
        for pname, lo, hi, sign in _populations(model, name):
            c = cal[cal_key(model, pname)]
            current = (c.drive_gain * b[lo:hi] + c.drive_offset) / resistance
            pops[pname] = Population(pname, name, kind, role, hi - lo, sign, current, (lo, hi))
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


def cal_key(model: CompiledCircuit, population: str) -> str:
    """The calibration of ``population`` (a plan name): its area's, as an area's populations
    share one pre-activation, but its own in an area computed population by population
    (:class:`~biofa.nn.staged.StagedArea`), whose populations may each differ."""
    area = population.partition(".")[0]
    staged = area in model.areas and getattr(model.areas[area], "staged", False)
    return population if staged else area


def _bias(model: CompiledCircuit, area: str) -> np.ndarray:
    """The bias of every population of ``area``, in channel order (zeros where it has none)."""
    module = model.areas[area]
    if getattr(module, "staged", False):
        return np.concatenate(
            [
                module.biases[n].detach().double().cpu().numpy()
                if n in module.biases
                else np.zeros(s.size)
                for n, s in module.spans.items()
            ]
        )
    b = module.bias
    n = model.shapes[area].pre[0]
    return np.zeros(n) if b is None else b.detach().double().cpu().numpy().copy()


def _populations(model: CompiledCircuit, area: str) -> list[tuple[str, int, int, int]]:
    """``(name, first channel, last channel + 1, sign)`` of each population of ``area``."""
    a = model.circuit.areas[area]
    if a.role == "readout":
        return [(area, 0, model.num_classes, 0)]
    return [(f"{area}.{s.name}", s.start, s.stop, s.population.sign) for s in spans(a).values()]


def normalization_of(data, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, offset)`` per channel of ``data.normalize`` for intensities in [0, 1]."""
    if data is None:
        return np.ones(channels), np.zeros(channels)
    x = torch.zeros(2, channels, 1, 1)
    x[1] = 1.0
    y = data.normalize(x).double().flatten(1).numpy()
    return y[1] - y[0], y[0]
