"""A projection group: the projections into one area that share an op, batched into ONE weight.

Projections into one area with the same kind signature (op kind, kernel, stride, padding), the
same feedback rule with the same options, and the same answer to "does the error go back?" form
one :class:`ProjectionGroup` whose weight is the concatenation of theirs along the input
dimension. Populations are channel ranges of their area, so a projection between E/I areas is one
weight too, with a per-input-channel sign (:mod:`biofa.nn.constraints`). A deep E/I CNN therefore
launches the kernels of a plain CNN of the same size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from biofa.circuit import Area, Circuit, Projection
from biofa.circuit.validation import AreaShape
from biofa.nn.constraints import balanced_init, constrain_signs, input_signs
from biofa.nn.function import GradientMode, project
from biofa.nn.seeds import generator
from biofa.rules import FeedbackContext, FeedbackRule
from biofa.rules.initializers import draw

__all__ = ["ProjectionGroup", "Slice"]


@dataclass(frozen=True)
class Slice:
    """Where one projection's weights sit in its group's input dimension."""

    projection: str
    source: str
    target: str
    op: str
    start: int
    stop: int


class ProjectionGroup(nn.Module):
    """Projections into one area batched into one weight (module docstring).

    The weight is drawn by the circuit's ``init`` (default He-normal, ``gain`` ``sqrt(2)`` into a
    ReLU area, 1 otherwise; :mod:`biofa.rules.initializers`) from ``(seed, "weight", name)``,
    signed by its source populations with E and I balanced
    (:func:`~biofa.nn.constraints.balanced_init`), and the rule's tensors from
    ``(seed, "feedback", name)``.
    """

    def __init__(
        self,
        name: str,
        projections: list[Projection],
        circuit: Circuit,
        shapes: dict[str, AreaShape],
        rule: FeedbackRule,
        send_error: bool,
        seed: int,
        mode: GradientMode,
    ):
        super().__init__()
        self.name = name
        self.sources = [p.source for p in projections]
        kind = projections[0].kind
        init = circuit.init
        target = circuit.areas[projections[0].target]
        out_shape = shapes[target.name].pre
        out_channels = out_shape[0]
        signs, slices, start = [], [], 0
        for p in projections:
            src_area, src_shape = circuit.areas[p.source], shapes[p.source].out
            channel_signs = _channel_signs(src_area, src_shape)
            repeat = kind.columns_per_channel(src_shape)
            width = len(channel_signs) * repeat
            signs += [s for s in channel_signs for _ in range(repeat)]
            slices.append(Slice(p.name, p.source, p.target, p.op, start, start + width))
            start += width
        self.slices = slices
        self.op = kind.build_op([shapes[p.source].out for p in projections], out_shape)
        shape = kind.weight_shape(out_channels, start, out_shape)
        fan, fan_out = kind.fan_in(shape), kind.fan_out(shape)
        gain = None  # the init's default: He-normal's is sqrt(2) into a ReLU area, else 1
        if init == "he_normal":
            gain = math.sqrt(2.0) if target.nonlinearity == "relu" else 1.0
        w = draw(init, shape, fan, fan_out, generator(seed, "weight", name), gain)
        sign_tensor = input_signs(signs, len(shape))
        self.weight = nn.Parameter(balanced_init(w, sign_tensor))
        constrain_signs(self, "weight", sign_tensor)
        self.rule, self.send_error, self.mode = rule, send_error, mode
        out_signs = target.signs if len(target.signs) == out_channels else [0] * out_channels
        context = FeedbackContext(
            name,
            target.name,
            tuple(self.sources),
            tuple(out_signs),
            tuple(signs),
            tuple((s.projection, s.start, s.stop) for s in slices),
            fan,
            self.op,
            init,
            fan_out,
        )
        with torch.no_grad():
            gen = generator(seed, "feedback", name)
            init = rule.init_feedback(self.weight.detach(), gen, context)
        self.feedback = nn.ParameterDict(
            {
                k: nn.Parameter(f.tensor.detach().clone(), requires_grad=f.learned)
                for k, f in init.items()
            }
        )
        self.norm = nn.BatchNorm2d(out_channels) if kind.batch_norm else None

    def forward(self, inputs: list[Tensor], bias: Tensor | None) -> Tensor:
        x = self.op.prepare(inputs)
        feedback = {k: v for k, v in self.feedback.items()}
        y = project(x, self.weight, bias, self.op, self.rule, feedback, self.mode, self.send_error)
        return y if self.norm is None else self.norm(y)

    def effective_feedback(self) -> Tensor:
        """The tensor used in place of the weight on the way back, now."""
        with torch.no_grad():
            fb = {k: v for k, v in self.feedback.items()}
            return self.rule.effective_feedback(self.weight, fb)


def _channel_signs(area: Area, shape: tuple[int, ...]) -> list[int]:
    if area.role == "input":
        return [area.populations[0].sign] * shape[0]
    return area.signs
