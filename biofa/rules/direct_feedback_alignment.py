"""Direct feedback alignment (Nøkland 2016).

The readout's error ``e = dL/dy`` (``N x classes``) is sent to every hidden area ``l`` directly
through its own fixed random matrix ``B_l``, skipping the layers in between:

.. math:: \\delta h_l = e\\, B_l, \\qquad B_l \\in \\mathbb{R}^{classes \\times |h_l|},

and the area's own nonlinearity, normalisation and pooling turn ``delta h_l`` into the error of
its pre-activation (``(B_l^T e) \\odot f'(a_l)`` for a plain area), from which its incoming
projections form their local updates ``delta_l x^T``. ``B_l ~ N(0, gain^2 / |h_l|)`` (``gain``
default ``None``: 1 under He-normal), scaled like a dense forward weight reading the area; under a
circuit's ``init="xavier_uniform"`` ``B_l ~ U(+-sqrt(6 / (|h_l| + classes)))``, as BioTorch draws
its DFA matrices (:mod:`biofa.rules.initializers`). The errors its outgoing projections would send
back are
not computed at all.

Nøkland, A. (2016), *Direct feedback alignment provides learning in deep neural networks*,
NeurIPS 29.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from biofa.rules._base import AreaContext, DirectFeedbackRule, Feedback
from biofa.rules.initializers import draw
from biofa.rules.registry import register


@register
class DirectFeedbackAlignment(DirectFeedbackRule):
    """Direct feedback alignment: the readout error reaches each area through its own fixed B."""

    name = "direct_feedback_alignment"
    defaults = {"gain": None}

    def init_feedback(
        self, context: AreaContext, generator: torch.Generator
    ) -> dict[str, Feedback]:
        size, classes = math.prod(context.shape), context.num_classes
        b = draw(
            context.init,
            (classes, size),
            size,
            classes,
            generator,
            self.options["gain"],
            he_gain=1.0,
        )
        return {"B": Feedback(b)}

    def deliver(
        self, output_error: Tensor, fb: dict[str, Tensor], area_shape: tuple[int, ...]
    ) -> Tensor:
        b = fb["B"].to(output_error.dtype)
        return (output_error @ b).view(output_error.shape[0], *area_shape)
