"""The Brian2 objects of a plan: groups of populations and the synapses between them.

A :class:`Layout` says which group each population lives in: one group per population
(``by_population=True``) or one per kind (``"poisson"``, ``"neuron"``, ``"readout"``). Within a
group a population occupies ``copies * size`` consecutive neurons, copy after copy, and every
connection is repeated block-diagonally over the copies.

All objects run on one clock, which keeps the generated standalone code identical from one build
to the next. At each stimulus onset every group returns to its initial state and reads its new
inputs from a 2-D ``TimedArray`` (segment x neuron) on an ``onset`` event (one scalar test per
time step; the reset and the lookups run once per stimulus): Poisson groups their rates, neuron
groups their state and currents (first thing in the onset's time step), and the readout's event
also records its mean potential over the stimulus that just ended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from biofa.spiking._brian import require_brian2, to_brian
from biofa.spiking.layout import Plan, Population

# Poisson input: each neuron's next spike is scheduled an exponential interval of mean 1/rate
# after the previous *scheduled* one (so rounding to time steps does not lower the rate), and
# drawn afresh from the onset when the rate changes (memoryless). One comparison per step and one
# random number per spike, instead of a random number per neuron and step.
INTERVAL = "-log(rand()) / (rates + 1e-9 * Hz)"


@dataclass(frozen=True)
class Timing:
    """``segments`` stimuli of ``duration`` s per run, rates counted after ``settle`` s."""

    segments: int
    duration: float
    settle: float
    dt: float

    @property
    def total(self) -> float:
        """Seconds of one run."""
        return self.segments * self.duration

    def steps(self, seconds: float) -> int:
        return int(round(seconds / self.dt))


@dataclass(frozen=True)
class Layout:
    """Group key -> ``(population, offset in the group, size of one copy)`` rows."""

    copies: int
    rows: dict[str, list[tuple[str, int, int]]]

    @property
    def where(self) -> dict[str, tuple[str, int]]:
        """Population -> ``(group key, offset)``."""
        return {n: (key, off) for key, rows in self.rows.items() for n, off, _ in rows}


def layout(plan: Plan, copies: int, by_population: bool) -> Layout:
    """Where each population of ``plan`` (except injected currents) sits."""
    rows: dict[str, list[tuple[str, int, int]]] = {}
    for p in plan.populations.values():
        if p.kind != "current":
            key = p.name if by_population else p.kind
            group = rows.setdefault(key, [])
            group.append((p.name, sum(copies * n for _, _, n in group), p.size))
    return Layout(copies, rows)


def object_name(key: str, suffix: str) -> str:
    """A valid Brian2 name (fixed for standalone, so that a rebuild finds the same code)."""
    return "biofa_" + re.sub(r"\W", "_", key.replace("+", "p").replace("-", "n")) + suffix


def group(plan: Plan, pops: list[Population], copies: int, timing: Timing, name: str):
    """``(group, input table or None, monitor or None)`` for ``pops`` (see the module docstring)."""
    b2 = require_brian2()
    n = sum(copies * p.size for p in pops)
    kind, per = pops[0].kind, timing.steps(timing.duration)
    table = b2.TimedArray(
        np.zeros((timing.segments, n)), dt=timing.duration * b2.second, name=f"{name}_in"
    )
    onset_event = {"onset": f"t_in_timesteps % {per} == 0"}
    namespace = {table.name: table, "Hz": b2.Hz, "amp": b2.amp, "second": b2.second}
    if kind == "poisson":
        g = b2.NeuronGroup(
            n,
            "rates : Hz\nt_next : second",
            threshold="t >= t_next",
            reset=f"t_next += {INTERVAL}",
            events=onset_event,
            namespace=namespace,
            name=name,
        )
        g.t_next = 1e9 * b2.second
        g.run_on_event("onset", f"rates = {table.name}(t, i) * Hz\nt_next = t + {INTERVAL}")
        return g, table, None
    model = plan.model_of(pops[0].name)
    eqs = [model.equations, "I_b : amp (constant)"]
    onset = {v: f"0 * {v}" if e == "0" else e for v, e in model.initial.items()}  # 0 of v's unit
    stim = plan.encoding == "current" and kind == "neuron"
    if stim:
        eqs += ["I = I_b + I_stim : amp", "I_stim : amp"]
        onset["I_stim"] = f"{table.name}(t, i) * amp"
    else:
        eqs.append("I = I_b : amp")
    if kind == "neuron":
        eqs += ["gate : 1", "gate0 : 1 (constant)"]
        onset["gate"] = "gate0"
    else:  # the readout's mean potential after `settle`, read at the next onset
        eqs.append(
            f"dv_mean/dt = int(t_in_timesteps % {per} >= {timing.steps(timing.settle)}) "
            f"* (v - E_L) / ({timing.duration - timing.settle!r} * second) : volt"
        )
        onset["v_mean"] = "0 * v_mean"
    namespace.update({k: to_brian(v) for k, v in model.params.items()})
    g = b2.NeuronGroup(
        n,
        "\n".join(eqs),
        threshold=model.threshold,
        reset=model.reset,
        refractory=model.refractory or False,
        events=onset_event,
        method=model.method if kind == "neuron" else "euler",
        namespace=namespace,
        name=name,
    )
    for var, expr in model.initial.items():
        value = 0.0 if expr == "0" else eval(expr, {"__builtins__": {}}, namespace)
        setattr(g, var, b2.Quantity(np.full(n, float(value)), dim=g.variables[var].dim))
    g.I_b = np.concatenate([np.tile(p.bias, copies) for p in pops]) * b2.amp
    if kind == "readout":  # the monitor records before the onset resets v_mean
        monitor = b2.EventMonitor(g, "onset", ["v_mean"], name=f"{name}_v")
        g.run_on_event("onset", "\n".join(f"{v} = {e}" for v, e in onset.items()))
        return g, None, monitor
    g.gate0 = g.gate = np.concatenate(
        [np.full(copies * p.size, 0.0 if p.gated else 1.0) for p in pops]
    )
    # at the start of the onset's time step, before anything else (first the event, then the
    # reset): the event's condition is one scalar test per step, not a statement per neuron
    g.thresholder["onset"].when = "start"
    g.run_on_event(
        "onset", "\n".join(f"{v} = {e}" for v, e in onset.items()), when="start", order=g.order + 1
    )
    return g, table if stim else None, b2.SpikeMonitor(g, name=f"{name}_spikes")


def synapses(plan: Plan, lay: Layout, groups: dict, suffix: str):
    """``(synapses by "src->dst", blocks)``: one ``Synapses`` per pair of groups.

    ``blocks`` maps each plan connection to ``(synapses key, first, last + 1)``. A gated error
    population's synapses add ``w * gate_pre``; its gate opens (``gate_post = 1``) at a spike of
    its forward twin, through one-to-one synapses keyed ``"src=>dst"``.
    """
    b2 = require_brian2()
    where, by_pair, out, blocks = lay.where, {}, {}, {}
    for c in plan.connections:
        if plan.populations[c.source].kind != "current":
            by_pair.setdefault((where[c.source][0], where[c.target][0]), []).append(c)
    for (src, dst), conns in by_pair.items():
        model = plan.model_of(conns[0].target)
        gated = any(plan.populations[c.source].gated for c in conns)
        parts, start = [], 0
        for c in conns:
            parts.append(_block(where[c.source][1], where[c.target][1], c.weight, lay.copies))
            blocks[c.name] = (f"{src}->{dst}", start, start + len(parts[-1][0]))
            start = blocks[c.name][2]
        syn = b2.Synapses(
            groups[src],
            groups[dst],
            f"w : {model.weight_unit}",
            on_pre=f"{model.synapse_target}_post += w" + (" * gate_pre" if gated else ""),
            delay=0 * b2.second,  # one shared delay, not one per synapse
            name=object_name(f"{src}_to_{dst}", suffix),
        )
        i, j, w = (np.concatenate(x) for x in zip(*parts, strict=True))
        syn.connect(i=i, j=j)
        syn.w = w * getattr(b2, model.weight_unit)
        out[f"{src}->{dst}"] = syn
    gates: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for p in plan.populations.values():
        if p.gated:
            key = (where[p.mirrors][0], where[p.name][0])
            gates.setdefault(key, []).append((where[p.mirrors][1], where[p.name][1], p.size))
    for (src, dst), members in gates.items():
        syn = b2.Synapses(
            groups[src],
            groups[dst],
            on_pre="gate_post = 1",
            delay=0 * b2.second,
            name=object_name(f"{src}_gates_{dst}", suffix),
        )
        syn.connect(
            i=np.concatenate([a + np.arange(lay.copies * n) for a, _, n in members]),
            j=np.concatenate([b + np.arange(lay.copies * n) for _, b, n in members]),
        )
        out[f"{src}=>{dst}"] = syn
    return out, blocks


def _block(source: int, target: int, weight: np.ndarray, copies: int):
    """Indices and weights of one connection repeated block-diagonally over the copies."""
    a, b = np.nonzero(weight)
    ns, nt = weight.shape
    c = np.arange(copies)[:, None]
    i = source + (c * ns + a).ravel()
    j = target + (c * nt + b).ravel()
    return i, j, np.tile(weight[a, b], copies)
