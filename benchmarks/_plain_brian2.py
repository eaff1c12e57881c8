"""The benchmark's reference: biofa's spiking network written by hand in plain Brian2.

What a Brian2 user would write for the same trained circuit (either of the benchmark's: the
784-(E 100 + I 25)-10 one with its feedback pathway, or the population-level one, whose masked
synapses are simply absent), inputs and layout, without biofa: one ``PoissonGroup`` per input
population (rates from a 2-D ``TimedArray``, the Brian2 idiom for a new stimulus every
``duration``), one ``NeuronGroup`` per population of LIF neurons (the readout a non-spiking
membrane), one ``Synapses`` per connection (``v_post += w``), ``run_regularly`` resetting the
state at each stimulus onset, ``SpikeMonitor`` s and a ``StateMonitor`` of the readout potential
every millisecond, all in one ``Network`` (``run()``'s magic does not look into lists), then
``run``. ``copies`` copies side by side (block-diagonal synapses) and ``segments`` stimuli one
after another, image ``segment * copies + copy``, as in biofa.

Everything comes from :func:`export`: the numpy arrays (SI units) of biofa's plan, i.e. the
trained weights and biases already calibrated, which is what the comparison should leave out of
the plain side (calibration is biofa's extra work, timed apart). Brian2's defaults are kept
(per-synapse delays, a random number per Poisson neuron and step, a clock per ``run_regularly``
with its own ``dt``): this is the script a competent user writes from the documentation, not a
tuned one. One exception, in the plain script's favour: ``make -j<cores>`` instead of Brian2's
unbounded ``make -j``, which starts every compiler at once (140 on this network).

    python benchmarks/_spiking_worker.py plain ARRAYS.npz --target cpp_standalone --directory D
"""

from __future__ import annotations

import os

import numpy as np

#: the LIF parameters and the readout's, as biofa's "lif" and "integrator" models (SI)
PARAMETERS = ("tau_m", "E_L", "V_th", "V_reset", "t_ref", "R")


def export(plan, images, errors, *, copies, segments, duration, settle, dt, seed) -> dict:
    """The plain arrays of ``plan`` (a :class:`biofa.spiking.Plan` with today's features).

    ``images`` ``(N, pixels)`` intensities in [0, 1], ``errors`` ``(N, classes)`` readout errors.
    """
    if plan.neuron.name != "lif" or plan.encoding != "poisson" or plan.readout != "voltage":
        raise ValueError(
            "the plain script is written for LIF neurons, Poisson inputs and the voltage readout"
        )
    out = {
        "images": np.asarray(images, np.float64),
        "errors": np.asarray(errors, np.float64),
        "copies": copies,
        "segments": segments,
        "duration": duration,
        "settle": settle,
        "dt": dt,
        "seed": seed,
        "input_rate": plan.input_rate,
        "error_rate": plan.error_rate,
        "lif": np.array([plan.neuron.si_params()[k] for k in PARAMETERS]),
        "readout": np.array([plan.readout_model.si_params()[k] for k in ("tau_m", "E_L", "R")]),
        "populations": np.array(list(plan.populations)),
    }
    for p in plan.populations.values():
        out[f"pop/{p.name}"] = np.array([p.size, p.polarity, p.gated])
        out[f"kind/{p.name}"] = np.array(p.role if p.kind == "poisson" else p.kind)
        out[f"bias/{p.name}"] = p.bias
        out[f"mirrors/{p.name}"] = np.array(p.mirrors)
    out["connections"] = np.array([[c.source, c.target] for c in plan.connections])
    for k, c in enumerate(plan.connections):
        out[f"weight/{k}"] = c.weight
    return out


def simulate(a, target: str = "cpp_standalone", directory: str | None = None) -> dict:
    """Build and run the network of arrays ``a``; spike counts and readout potentials.

    Returns ``{"counts": {population: (N, size)}, "potential": (N, classes)}``: spikes after
    ``settle`` per image and neuron, and the mean ``v - E_L`` (volt) after ``settle``.
    """
    from brian2 import (
        Hz,
        Network,
        NeuronGroup,
        PoissonGroup,
        SpikeMonitor,
        StateMonitor,
        Synapses,
        TimedArray,
        amp,
        defaultclock,
        ms,
        prefs,
        second,
        seed,
        set_device,
        volt,
    )

    if target == "cpp_standalone":
        set_device("cpp_standalone", directory=directory)
        # Brian2's default `make -j` starts a compiler per file at once (140 here): one per core
        prefs.devices.cpp_standalone.extra_make_args_unix = [f"-j{os.cpu_count() or 1}"]
    else:
        prefs.codegen.target = target
    copies, segments = int(a["copies"]), int(a["segments"])
    duration = float(a["duration"]) * second
    defaultclock.dt = float(a["dt"]) * second
    seed(int(a["seed"]))
    tau_m, E_L, V_th, V_reset, t_ref, R = (float(v) for v in a["lif"])
    namespace = {
        "tau_m": tau_m * second,
        "E_L": E_L * volt,
        "V_th": V_th * volt,
        "V_reset": V_reset * volt,
        "R": R * volt / amp,
    }
    lif = """dv/dt = (E_L - v + R*I_b) / tau_m : volt (unless refractory)
             I_b : amp (constant)"""
    tau_o, E_o, R_o = (float(v) for v in a["readout"])
    readout_ns = {"tau_m": tau_o * second, "E_L": E_o * volt, "R": R_o * volt / amp}
    integrator = """dv/dt = (E_L - v + R*I_b) / tau_m : volt
                    I_b : amp (constant)"""

    n_images = len(a["images"])
    capacity = copies * segments

    def stimulus(rates):  # (N, n) Hz -> (segments, copies * n): one row per stimulus
        padded = np.zeros((capacity, rates.shape[1]))
        padded[:n_images] = rates
        return padded.reshape(segments, -1)

    groups, monitors, sizes = {}, {}, {}
    for name in a["populations"]:
        name = str(name)
        size, polarity, gated = (int(v) for v in a[f"pop/{name}"])
        kind = str(a[f"kind/{name}"])
        sizes[name] = size
        n = copies * size
        if kind in ("input", "error"):
            rates = (
                float(a["input_rate"]) * a["images"]
                if kind == "input"
                else float(a["error_rate"]) * np.maximum(polarity * a["errors"], 0)
            )
            table = TimedArray(stimulus(rates) * Hz, dt=duration)
            groups[name] = PoissonGroup(n, rates="table(t, i)", namespace={"table": table})
            continue
        if kind == "neuron":
            g = NeuronGroup(
                n,
                lif + ("\ngate : 1" if gated else ""),
                threshold="v > V_th",
                reset="v = V_reset",
                refractory=t_ref * second,
                method="exact",
                namespace=namespace,
            )
            monitors[name] = SpikeMonitor(g)
        else:
            g = NeuronGroup(n, integrator, method="exact", namespace=readout_ns)
            monitors[name] = StateMonitor(g, "v", record=True, dt=1 * ms)
        g.v = (E_L if kind == "neuron" else E_o) * volt
        g.I_b = np.tile(a[f"bias/{name}"], copies) * amp
        g.run_regularly("v = E_L" + ("\ngate = 0" if gated else ""), dt=duration)
        groups[name] = g
    synapses = []
    for k, (src, dst) in enumerate(a["connections"]):
        src, dst = str(src), str(dst)
        weight = a[f"weight/{k}"]
        gated = bool(a[f"pop/{src}"][2])
        s = Synapses(
            groups[src],
            groups[dst],
            "w : volt",
            on_pre="v_post += w * gate_pre" if gated else "v_post += w",
        )
        pre, post = np.nonzero(weight)
        c = np.arange(copies)[:, None]
        s.connect(i=(c * weight.shape[0] + pre).ravel(), j=(c * weight.shape[1] + post).ravel())
        s.w = np.tile(weight[pre, post], copies) * volt
        synapses.append(s)
    for name in a["populations"]:  # a gated error population opens with its forward twin's spike
        name, twin = str(name), str(a[f"mirrors/{name}"])
        if twin and bool(a[f"pop/{name}"][2]):
            g = Synapses(groups[twin], groups[name], on_pre="gate_post = 1")
            g.connect(j="i")
            synapses.append(g)
    net = Network(*groups.values(), *synapses, *monitors.values())
    net.run(segments * duration)
    return read(monitors, sizes, a)


def read(monitors: dict, sizes: dict, a) -> dict:
    """Spike counts after ``settle`` per image and neuron, mean readout ``v - E_L`` after it."""
    from brian2 import StateMonitor

    copies, segments, n_images = int(a["copies"]), int(a["segments"]), len(a["images"])
    dt = float(a["dt"])
    per, skip = int(round(float(a["duration"]) / dt)), int(round(float(a["settle"]) / dt))
    counts, potential = {}, None
    for name, m in monitors.items():
        if isinstance(m, StateMonitor):  # (neurons, samples every ms) -> mean after settle
            v = np.asarray(m.v_) - float(a["readout"][1])
            keep = np.rint(np.asarray(m.t_) / dt).astype(np.int64) % per >= skip
            window = v[:, keep].reshape(len(v), segments, -1).mean(axis=2)  # neurons x segments
            potential = window.T.reshape(copies * segments, -1)[:n_images]
            continue
        segment, within = np.divmod(np.rint(np.asarray(m.t_) / dt).astype(np.int64), per)
        copy, neuron = np.divmod(np.asarray(m.i, np.int64), sizes[name])
        image = segment * copies + copy
        keep = (within >= skip) & (image < n_images)
        flat = image[keep] * sizes[name] + neuron[keep]
        counts[name] = np.bincount(flat, minlength=n_images * sizes[name]).reshape(n_images, -1)
    return {"counts": counts, "potential": potential}
