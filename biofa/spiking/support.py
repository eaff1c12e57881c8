"""Which compiled circuits the spiking back-end translates, and a clear refusal for the others."""

from __future__ import annotations

import math

import torch

from biofa.kinds import Dense
from biofa.nn import CompiledCircuit
from biofa.rules import CrossingHook

SUPPORTED = (
    "supported: dense circuits (dense() projections, dense(flatten=True) from the input) of "
    "ReLU hidden areas (bias or bias=False, populations E/I/Units) and a linear readout, without "
    "batch norm or pooling, with layer-wise feedback rules (any effective_feedback, standard "
    "derivative of the nonlinearity) or direct rules linear in the readout error; "
    "population-level circuits (projections between populations, within-area subtractive "
    "inhibition, sparse masks) forward only"
)


def check_supported(model: CompiledCircuit, max_neurons: int = 5000) -> None:
    """Raise ``ValueError`` saying why ``model`` cannot run in spikes and what can.

    ``max_neurons`` bounds the neurons of one copy of the network (forward and error populations).
    """
    circuit = model.circuit
    problems: list[str] = _population_problems(model)
    for p in circuit.projections:
        if not isinstance(p.kind, Dense):
            problems.append(
                f"projection {p.name!r} is {p.op} (only dense projections have "
                "a spiking translation; conv/identity are not supported)"
            )
        elif p.kind.batch_norm:
            problems.append(
                f"projection {p.name!r} has batch norm (fold it into the weights first)"
            )
    for area in circuit.areas.values():
        if area.role == "input":
            continue
        if area.batch_norm:
            problems.append(f"area {area.name!r} has batch norm (fold it into the weights first)")
        if area.pool is not None:
            problems.append(f"area {area.name!r} pools ({area.pool}); pooling is not supported")
        wanted = "identity" if area.role == "readout" else "relu"
        if area.nonlinearity != wanted:
            problems.append(
                f"area {area.name!r} has nonlinearity {area.nonlinearity!r} "
                f"({area.role} areas must be {wanted!r}: firing rates are ReLU-like)"
            )
        for pop in area.populations if area.role == "hidden" else ():
            if pop.nonlinearity not in (None, wanted):
                problems.append(
                    f"population '{area.name}.{pop.name}' has nonlinearity "
                    f"{pop.nonlinearity!r} (hidden populations must be 'relu': firing rates "
                    "are ReLU-like)"
                )
    problems += _direct_rules_linear(model) + _custom_crossings(model)
    if not problems:
        n = _neurons(model)
        if n > max_neurons:
            problems.append(
                f"one copy of the network has {n} neurons (> max_neurons="
                f"{max_neurons}); the back-end is meant for small circuits"
            )
    if problems:
        raise ValueError(
            f"circuit {circuit.name!r} cannot be translated to spiking neurons: "
            + "; ".join(problems)
            + f". ({SUPPORTED})"
        )


def population_level(model: CompiledCircuit) -> bool:
    """Whether ``model`` wires populations (projections between or within populations, modes,
    masks, per-projection init) or computes an area population by population."""
    return any(p.population_level for p in model.circuit.projections) or any(
        getattr(a, "staged", False) for a in model.areas.values()
    )


def _population_problems(model: CompiledCircuit) -> list[str]:
    """What of a population-level circuit the translation refuses: divisive inhibition (no
    current-based counterpart of ``g a / gamma``) and a readout of several populations."""
    problems = []
    for p in model.circuit.projections:
        if p.divisive:
            problems.append(
                f"projection {p.name!r} inhibits divisively (mode={p.mode!r}): the rate model "
                "divides the drive, g*a/gamma, while a shunting synapse adds a conductance to "
                "the membrane's leak, which changes the f-I curve the calibration fits with "
                "every image; only mode='subtractive' is translated"
            )
    out = model.circuit.readout_area
    if len(out.populations) > 1 or getattr(model.areas[out.name], "staged", False):
        problems.append(
            f"the readout {out.name!r} has populations of its own or is computed population "
            "by population (the spiking readout is one population of class scores)"
        )
    return problems


def _neurons(model: CompiledCircuit) -> int:
    """Forward neurons plus the two error populations of every hidden area and of the readout."""
    hidden = sum(  # every population, local interneurons too (pre: before the area's output)
        math.prod(model.shapes[n].pre) for n, a in model.circuit.areas.items() if a.role == "hidden"
    )
    return 3 * hidden + 3 * model.num_classes


def _custom_crossings(model: CompiledCircuit) -> list[str]:
    """Rules that replace f'(a) when the error crosses a nonlinearity (the spiking gate is f')."""
    problems = []
    for name, area in model.areas.items():
        hooks = [area.crossing, *getattr(area, "crossings", {}).values()]
        if any(isinstance(h, CrossingHook) for h in hooks):
            used = sorted({g.rule.name for g in model.groups.values() if name in g.sources})
            problems.append(
                f"area {name!r}: rule {', '.join(used)} replaces the derivative of the "
                "nonlinearity on the way back, which the spiking error gate does not model"
            )
    return problems


def _direct_rules_linear(model: CompiledCircuit) -> list[str]:
    """Direct rules must deliver ``e @ B`` for some matrix ``B``: check on random errors."""
    problems = []
    gen = torch.Generator().manual_seed(0)
    for lower, hook in model.hooks.items():
        fb = dict(hook.feedback.items())
        shape = tuple(model.shapes[lower].out)
        with torch.no_grad():
            e = torch.randn(3, model.num_classes, generator=gen)
            matrix = hook.hook.deliver(torch.eye(model.num_classes), fb, shape).flatten(1)
            direct = hook.hook.deliver(e, fb, shape).flatten(1)
        if not torch.allclose(direct, e @ matrix, rtol=1e-4, atol=1e-5):
            problems.append(
                f"direct pathway to {lower!r} ({type(hook.hook).__name__}) is not "
                "linear in the readout error"
            )
    return problems
