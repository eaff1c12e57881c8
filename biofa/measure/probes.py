"""Per-projection probes of a compiled circuit at a record step, for the Recorder.

Each weighted projection is a slice ``W[:, start:stop]`` of its group's batched weight (a block
``W[r0:r1, c0:c1]`` under population wiring; :class:`~biofa.nn.group.Slice`); the probes hand
that slice, the same slice of the rule's
effective feedback and the rule's tensors (:class:`~biofa.measure.registry.ProjectionInputs`) to
every registered projection metric, and add the values a :class:`~biofa.rules.Probes` rule
reports for itself. Everything stays on the device (0-d tensors); the Recorder moves it to the
host once per record step. Projections that send no error (out of the input area, or out of an
area a direct rule feeds) have no effective feedback, and their feedback metrics are not recorded
(NaN in the output).
"""

from __future__ import annotations

import torch
from torch import Tensor

from biofa.measure.registry import ProjectionInputs, RunInputs, computed, registered
from biofa.nn import CompiledCircuit
from biofa.rules import Probes

__all__ = ["projection_metrics", "run_metrics"]


def projection_metrics(model: CompiledCircuit) -> dict[str, dict[str, Tensor]]:
    """``{metric: {projection: value}}`` for every registered projection metric and every metric
    a :class:`~biofa.rules.Probes` rule declares."""
    declared = registered()
    metrics = computed(ProjectionInputs)
    out: dict[str, dict[str, Tensor]] = {m.name: {} for m in metrics}
    with torch.no_grad():
        for group in model.groups.values():
            weight = group.weight.detach()
            # no error is sent to the input area, so there is no feedback to measure there
            sends = group.send_error and any(src != model.order[0] for src in group.sources)
            feedback = group.effective_feedback() if sends else None
            if feedback is not None and feedback.shape != weight.shape:
                feedback = None
            fb = {k: v.detach() for k, v in group.feedback.items()}
            probed = sends and isinstance(group.rule, Probes)
            for s in group.slices:
                inputs = ProjectionInputs(
                    s.block(weight), None if feedback is None else s.block(feedback), fb
                )
                for m in metrics:
                    value = m.compute(inputs)
                    if value is not None:
                        out[m.name][s.projection] = value
                if probed:  # the rule's own metrics (e.g. PFA's intermediate population)
                    for name, value in group.rule.probe(weight, fb, s.start, s.stop).items():
                        if name not in declared:
                            raise ValueError(
                                f"rule {group.rule.name!r} probed {name!r}, which it does not "
                                "declare in its `metrics`"
                            )
                        out.setdefault(name, {})[s.projection] = value
    return {name: values for name, values in out.items() if values}


def run_metrics(model: CompiledCircuit, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """``{metric: value}`` for every registered run metric computed from
    :class:`~biofa.measure.registry.RunInputs` (the model and the step's batch)."""
    inputs = RunInputs(model, x, y)
    values = {m.name: m.compute(inputs) for m in computed(RunInputs)}
    return {name: value for name, value in values.items() if value is not None}
