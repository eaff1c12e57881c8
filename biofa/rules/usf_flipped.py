r"""Sign-flipped uniform feedback: the control that shows feedback *signs* matter.

The error returns through the reversed signs of the forward weights,

.. math:: B = -\kappa\,\operatorname{sign}(W), \qquad \delta_{in} = B^\top \delta_{out},

so every feedback sign disagrees with ``W`` (sign concordance exactly 0, feedback angle 180°):
the delivered error points against backprop's and learning in the layers below fails. Liao,
Leibo & Poggio (2016) vary the fraction of concordant signs and find performance falls as it
drops; this is the extreme. Options ``scale`` and ``norm`` as for :mod:`biofa.rules.usf` (for a
partial mismatch use ``usf`` with ``concordance=c``).

Liao, Q., Leibo, J. Z. & Poggio, T. (2016), *How important is weight symmetry in
backpropagation?*, AAAI (arXiv:1510.05067).
"""

from __future__ import annotations

from torch import Tensor

from biofa.rules._sign_concordant import SignConcordantRule
from biofa.rules.registry import register


@register
class FlippedSignFeedback(SignConcordantRule):
    """Control: the error returns through -sign(W) (every feedback sign wrong)."""

    name = "usf_flipped"
    defaults = {"scale": 1.0, "norm": "none"}
    sigma = -1.0

    def magnitudes(self, weight: Tensor, fb: dict[str, Tensor]) -> None:
        return None  # one uniform magnitude
