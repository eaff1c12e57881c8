"""An area's own computation on its summed input, and the rules' hooks into it.

Forward: ``h = pool(f(norm(pre + b)))``. On the way back a rule may act at two points of the area
(the area-level extension point, :class:`biofa.rules.AreaHook`): a
:class:`~biofa.rules.CrossingHook` replaces the derivative of ``f`` (EKDAA's target differences),
a :class:`~biofa.rules.DeliverError` hook (:class:`HookModule`, applied to the area's output by
the compiler) replaces the error arriving at ``h`` by one made from the readout's error (direct
feedback alignment). The compiler attaches them; this module only runs them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biofa.circuit import Area
from biofa.circuit.validation import AreaShape
from biofa.nn.function import CrossNonlinearity, DeliverAreaError, ErrorBus, GradientMode
from biofa.nn.seeds import generator
from biofa.rules import AreaContext, CrossingHook, DeliverError

__all__ = ["ACTIVATIONS", "AreaModule", "HookModule", "pool"]

# "sign": torch.sign, whose derivative is 0 almost everywhere (autograd returns zeros), so only
# rules that cross it without a derivative (a CrossingHook, e.g. EKDAA) train through it.
ACTIVATIONS = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "sign": torch.sign,
    "identity": None,
}


class HookModule(nn.Module):
    """A :class:`~biofa.rules.DeliverError` hook at one area, with its tensors as parameters;
    applied to the area's output (after :class:`AreaModule`)."""

    def __init__(self, hook: DeliverError, context: AreaContext, seed: int, mode: GradientMode):
        super().__init__()
        self.hook, self.area, self.mode = hook, context.area, mode
        init = hook.init_feedback(context, generator(seed, "feedback", context.name))
        self.feedback = nn.ParameterDict(
            {k: nn.Parameter(f.tensor.clone(), requires_grad=f.learned) for k, f in init.items()}
        )

    def forward(self, h: Tensor, bus: ErrorBus) -> Tensor:
        fb = {k: v for k, v in self.feedback.items()}
        return DeliverAreaError.apply(h, bus, self.hook, self.mode, tuple(fb), *fb.values())


class AreaModule(nn.Module):
    """An area's bias, batch norm, nonlinearity and pooling, with its hooks (module docstring)."""

    def __init__(
        self,
        area: Area,
        shape: AreaShape,
        mode: GradientMode,
        crossing: CrossingHook | None = None,
    ):
        super().__init__()
        self.area, self.mode, self.crossing = area, mode, crossing
        channels = shape.pre[0]
        self.bias = nn.Parameter(torch.zeros(channels)) if area.bias else None
        self.norm = None
        if area.batch_norm:
            self.norm = (
                nn.BatchNorm2d(channels) if len(shape.pre) == 3 else nn.BatchNorm1d(channels)
            )
        self.activation = ACTIVATIONS[area.nonlinearity]

    def forward(self, pre: Tensor, bias_added: bool) -> Tensor:
        if self.bias is not None and not bias_added:
            pre = pre + self.bias.view(1, -1, *([1] * (pre.dim() - 2)))
        h = pre if self.norm is None else self.norm(pre)
        if self.crossing is not None:
            h = CrossNonlinearity.apply(h, self.activation, self.crossing, self.mode)
        elif self.activation is not None:
            h = self.activation(h)
        return pool(h, self.area)


def pool(h: Tensor, area: Area) -> Tensor:
    """``area``'s pooling of its activity ``h``."""
    kind, k = area.pool, area.pool_size
    if kind == "max":
        h = F.max_pool2d(h, k)
    elif kind == "avg":
        h = F.avg_pool2d(h, k)
    elif kind == "global_avg":
        h = h.mean(dim=(2, 3))
    return h
