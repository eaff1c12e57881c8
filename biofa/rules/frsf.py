r"""Fixed random-magnitude sign-concordant feedback, frSF (Liao, Leibo & Poggio 2016).

.. math:: B = \kappa\,\operatorname{sign}(W) \circ |R|, \qquad R_{ij} \sim N(0, 1)
          \text{ drawn once and fixed}, \qquad \delta_{in} = B^\top \delta_{out} .

The magnitudes are random and never change; the signs follow ``W`` at every step (sign
concordance exactly 1). ``|R|`` is a fixed feedback tensor (``magnitude``), so checkpoints keep
it. Options ``scale``, ``norm`` (``"none"``, ``"init"``, ``"sn"``, ``"biotorch"``, ``"xiao"``) and
``concordance`` as for :mod:`biofa.rules.usf`: with ``norm="none"`` the magnitudes are
``scale * |N(0, 1)|``, with ``"init"`` ``rms(W_p(0)) * |N(0, 1)|`` (the forward initialisation's
scale). Option ``magnitude``: ``"half_normal"`` (default) or ``"uniform"`` (``|R|``,
``R ~ U(-sqrt(3), sqrt(3))``). BioTorch's frSF (fixed ``|xavier_uniform_|`` magnitudes, signs of
the current ``W``) is ``norm="biotorch", magnitude="uniform"`` in a circuit declared with
``init="xavier_uniform"``: ``B = sign(W) |U(-a, a)|``, ``a = sqrt(6 / (n_in + n_out))``; Xiao et
al.'s random-magnitude sign symmetry is ``norm="xiao"`` (half-normal magnitudes).

Liao, Q., Leibo, J. Z. & Poggio, T. (2016), *How important is weight symmetry in
backpropagation?*, AAAI (arXiv:1510.05067).
"""

from __future__ import annotations

import torch
from torch import Tensor

from biofa.rules._base import Feedback
from biofa.rules._sign_concordant import SignConcordantRule, half_normal, uniform_magnitude
from biofa.rules.registry import register


@register
class FixedRandomSignConcordant(SignConcordantRule):
    """frSF: sign(W) with random magnitudes drawn once (Liao et al. 2016)."""

    name = "frsf"
    defaults = {**SignConcordantRule.defaults, "magnitude": "half_normal"}

    def init_magnitudes(self, weight: Tensor, generator: torch.Generator) -> dict[str, Feedback]:
        draw = uniform_magnitude if self.options["magnitude"] == "uniform" else half_normal
        m = draw(tuple(weight.shape), generator)
        return {"magnitude": Feedback(m.to(device=weight.device, dtype=weight.dtype))}

    def magnitudes(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        return fb["magnitude"]
