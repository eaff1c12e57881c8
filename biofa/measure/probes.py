"""Per-projection alignment probes of a compiled circuit, for the Recorder.

Each weighted projection is a slice of its group's batched weight
(:class:`~biofa.nn.compiler.Slice`);
the probes compare that slice of ``W`` with the same slice of the rule's effective feedback
using
the pure functions of :mod:`biofa.measure.metrics`. Everything stays on the device (0-d tensors);
the
Recorder moves it to the host once per record step. Projections that send no error (out of the
input area, or out of an area a direct rule feeds) and direct rules, whose feedback has no ``W``
shape, have no feedback metrics (NaN in the output).
"""

from __future__ import annotations

import torch
from torch import Tensor

from biofa.measure import metrics
from biofa.nn.compiler import CompiledCircuit
from biofa.rules._base import overrides


def projection_metrics(model: CompiledCircuit) -> dict[str, dict[str, Tensor]]:
    """``{metric: {projection: value}}`` for weight/feedback norms, feedback angle, concordance."""
    out: dict[str, dict[str, Tensor]] = {
        "weight_norm": {},
        "feedback_norm": {},
        "feedback_angle": {},
        "sign_concordance": {},
    }
    with torch.no_grad():
        for group in model.groups.values():
            weight = group.weight.detach()
            # no error is sent to the input area, so there is no feedback to measure there
            sends = group.send_error and any(src != model.order[0] for src in group.sources)
            feedback = group.effective_feedback() if sends else None
            extra = sends and overrides(group.rule, "probe")
            fb = {k: v.detach() for k, v in group.feedback.items()} if extra else {}
            for s in group.slices:
                w = weight[:, s.start : s.stop]
                out["weight_norm"][s.projection] = metrics.frobenius_norm(w)
                if extra:  # the rule's own metrics (e.g. PFA's intermediate population)
                    for name, value in group.rule.probe(weight, fb, s.start, s.stop).items():
                        out.setdefault(name, {})[s.projection] = value
                if feedback is None or feedback.shape != weight.shape:
                    continue
                b = feedback[:, s.start : s.stop]
                out["feedback_norm"][s.projection] = metrics.frobenius_norm(b)
                out["feedback_angle"][s.projection] = metrics.feedback_angle(w, b)
                out["sign_concordance"][s.projection] = metrics.sign_concordance(w, b)
    return out
