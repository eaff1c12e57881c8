"""Feedback alignment (Lillicrap, Cownden, Tweed & Akerman 2016).

The error returns through a fixed random matrix ``B`` of ``W``'s shape instead of ``W``:

.. math::
    \\delta_{in} = B^\\top \\delta_{out}, \\qquad \\Delta W = -\\eta\\, \\delta_{out} x^\\top .

``B`` is drawn once, ``B_ij ~ N(0, gain^2 / fan_in)`` -- the same distribution as the forward
initialisation (He et al. 2015 for ReLU, ``gain = sqrt(2)``) -- and never changes (under a circuit
declared with ``init="xavier_uniform"`` or ``"kaiming_uniform"``, ``B`` is drawn from that
convention instead, like the forward weights, as BioTorch does; option ``gain``, default ``None``:
the convention's default, see :mod:`biofa.rules.initializers`); ``W`` comes to
align with ``B`` during learning ("the forward weights learn to make the feedback useful").
For a conv projection ``B`` is a kernel of the same shape and the error travels back through the
transposed convolution with ``B``.

Lillicrap, T. P. et al. (2016), *Random synaptic feedback weights support error backpropagation
for deep learning*, Nature Communications 7:13276.
"""

from __future__ import annotations

import torch
from torch import Tensor

from biofa.rules._base import Feedback, FeedbackContext, FeedbackRule
from biofa.rules.initializers import draw_like
from biofa.rules.registry import register


@register
class FeedbackAlignment(FeedbackRule):
    """Feedback alignment: a fixed random B, drawn like the forward weights, carries the error."""

    name = "feedback_alignment"
    defaults = {"gain": None}

    def init_feedback(
        self, weight: Tensor, generator: torch.Generator, context: FeedbackContext
    ) -> dict[str, Feedback]:
        b = draw_like(weight, generator, self.options["gain"], context)
        return {"B": Feedback(b, learned=False)}

    def effective_feedback(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        return fb["B"]
