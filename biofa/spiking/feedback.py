"""Feedback pathways in spikes: signed errors carried by pairs of populations.

The readout error :math:`e = \\mathrm{softmax}(z) - \\mathrm{onehot}(t)` enters as two Poisson
populations ``<readout>.err+`` / ``<readout>.err-`` firing at :math:`r_e \\max(0, \\pm e)`. The
error delivered to a hidden area :math:`l`,

.. math:: \\delta_l = \\sum_{u} (\\delta_u \\odot f'(a_u))\\, B_{u l}
    \\quad (\\delta_{readout} = e,\\ f' = 1 \\text{ there}),

is carried, per forward population, by ``<pop>.err+`` firing at about :math:`k_\\delta \\max(0,
\\delta)` and ``<pop>.err-`` at :math:`k_\\delta \\max(0, -\\delta)`: with :math:`\\delta =
\\delta^+ - \\delta^-`, the ``+`` population receives :math:`B` from the upper ``+`` population and
:math:`-B` from the upper ``-`` one, the ``-`` population the opposite. :math:`B` is the group's
``effective_feedback()`` (layer-wise rules, ``W``'s shape, read as ``upper x lower``) or a direct
rule's ``deliver`` applied to the identity (``classes x lower``). The pair's calibration
(:mod:`biofa.spiking.calibrate`) is fitted on :math:`\\pm\\delta` over the
calibration images; an upper pair passing its error further down is gated by its forward twin
(:math:`f'(a_u)`).
"""

from __future__ import annotations

import numpy as np
import torch

from biofa.nn import CompiledCircuit
from biofa.spiking.calibrate import fit
from biofa.spiking.layout import Connection, Plan, Population
from biofa.spiking.rates import RateTrace


def feedback_matrices(plan: Plan, model: CompiledCircuit) -> list[tuple[str, str, np.ndarray, str]]:
    """``(upper area, lower area, B (upper x lower units), pathway name)`` of every pathway."""
    out = []
    for group in model.groups.values():
        if not group.send_error:
            continue
        b = group.effective_feedback().detach().double().cpu().numpy()
        for s in group.slices:
            if s.source != plan.input_area:  # the input receives no error
                out.append((s.target, s.source, b[:, s.start : s.stop], f"{s.target}->{s.source}"))
    classes = model.num_classes
    for lower, hook in model.hooks.items():
        fb = dict(hook.feedback.items())
        with torch.no_grad():
            b = hook.hook.deliver(torch.eye(classes), fb, tuple(model.shapes[lower].out))
        out.append(
            (
                plan.readout_area,
                lower,
                b.flatten(1).double().cpu().numpy(),
                f"{plan.readout_area}->{lower}",
            )
        )
    return out


def add_feedback(
    plan: Plan,
    model: CompiledCircuit,
    trace: RateTrace,
    rate,
    max_rate: float,
    percentile: float,
    error_synapses: str = "signed",
) -> None:
    """Add the error populations and feedback connections of ``model`` to ``plan`` (in place).

    ``error_synapses="signed"``: the ``+`` population receives ``B`` from the upper ``+`` and
    ``-B`` from the upper ``-`` population (each error neuron both excites and inhibits).
    ``"excitatory"`` keeps Dale's law for error neurons: only the positive part of each of those
    blocks is kept, i.e. ``B+`` from ``+`` and ``B-`` (= ``max(-B, 0)``) from ``-`` onto ``+``,
    the mirror image onto ``-``. The pair's difference still receives ``B (delta+ - delta-)``,
    exactly in the linear range; both members get the common drive ``B+ delta+ + B- delta-``,
    which rectification and the f-I curve do not pass linearly.
    """
    top = plan.readout_area
    classes = model.num_classes
    names = (f"{top}.err+", f"{top}.err-")
    for name, polarity in zip(names, (1, -1), strict=True):
        plan.populations[name] = Population(
            name, top, "poisson", "error", classes, 0, np.zeros(classes), (0, classes), polarity
        )
    plan.errors[top] = [names]
    matrices = feedback_matrices(plan, model)
    passes_down = {upper for upper, *_ in matrices if upper != top}
    resistance = plan.neuron.si_params()["R"]
    for area in (n for n in model.order[1:] if n in trace.error):
        delta = trace.error[area]
        cal = plan.calibration[f"{area}.err"] = fit(
            np.concatenate([delta, -delta]), rate, max_rate, percentile
        )
        plan.errors[area] = []
        for fwd in plan.forward[area]:
            p = plan.populations[fwd]
            pair = (f"{fwd}.err+", f"{fwd}.err-")
            for name, polarity in zip(pair, (1, -1), strict=True):
                plan.populations[name] = Population(
                    name,
                    area,
                    "neuron",
                    "error",
                    p.size,
                    0,
                    np.full(p.size, cal.drive_offset / resistance),
                    p.channels,
                    polarity,
                    fwd,
                    area in passes_down,
                )
            plan.errors[area].append(pair)
    for upper, lower, b, via in matrices:
        k_upper = plan.error_rate if upper == top else plan.calibration[f"{upper}.err"].gain
        factor = plan.calibration[f"{lower}.err"].drive_gain / (
            k_upper * plan.neuron.weight_scale()
        )
        for up in plan.errors[upper]:
            r0, r1 = plan.populations[up[0]].channels
            for low in plan.errors[lower]:
                c0, c1 = plan.populations[low[0]].channels
                block = factor * b[r0:r1, c0:c1]
                for src, s_sign in zip(up, (1, -1), strict=True):
                    for dst, d_sign in zip(low, (1, -1), strict=True):
                        weights = s_sign * d_sign * block
                        if error_synapses == "excitatory":
                            weights = np.maximum(weights, 0.0)
                        plan.connections.append(Connection(src, dst, weights, "feedback", via))
