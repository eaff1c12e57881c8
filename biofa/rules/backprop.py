"""Backpropagation: the reference rule.

The error travels back through the forward weights themselves,
``delta_in = W^T delta_out`` (``B_eff = W``): exact gradients, and the weight-transport problem
(Grossberg 1987) that the other rules avoid. Rumelhart, Hinton & Williams (1986), *Learning
representations by back-propagating errors*, Nature 323:533-536.
"""

from __future__ import annotations

from torch import Tensor

from biofa.rules._base import FeedbackRule, NativeBackward
from biofa.rules.registry import register


@register
class Backprop(FeedbackRule, NativeBackward):
    """Backpropagation: the error returns through the forward weights (B = W)."""

    name = "backprop"

    def effective_feedback(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        return weight
