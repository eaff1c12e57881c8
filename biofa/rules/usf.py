r"""Uniform sign-concordant feedback, uSF (Liao, Leibo & Poggio 2016).

The error returns through the *signs* of the forward weights, with one uniform magnitude:

.. math:: \delta_{in} = B^\top \delta_{out}, \qquad B = \kappa\,\operatorname{sign}(W),
          \qquad \Delta W = -\eta\,\delta_{out} x^\top ,

recomputed from the current ``W`` at every backward pass (the sign follows ``W``; sign
concordance is exactly 1). For a conv projection ``B`` is the kernel ``sign(W)`` and the error
travels back through the transposed convolution with it.

Options (``feedback(..., rule="usf", scale=..., norm=..., concordance=...)``):

* ``scale`` (default 1.0): a constant factor on ``B``.
* ``norm`` (default ``"none"``): ``"none"`` -- ``B = scale * sign(W)``, Liao et al.'s uSF;
  ``"init"`` -- ``B_p = scale * rms(W_p(0)) * sign(W_p)``, Moskovitz et al.'s "Init." (the
  initialisation's scale; ``||B_p|| = ||W_p(0)||``); ``"sn"`` -- ``B_p = scale * ||W_p||_F *
  sign(W_p) / ||sign(W_p)||_F``, Moskovitz et al.'s "SN" (``||B_p|| = ||W_p||`` at every step);
  ``"biotorch"`` -- BioTorch's ``B = sf sign(W)``, ``sf = sqrt(2 / (fan_in + fan_out))`` in a
  circuit with ``init="xavier_uniform"``, else ``1 / sqrt(3 fan_in)`` (fans as torch counts them);
  ``"xiao"`` -- Xiao et al.'s (2018) fixed ``sqrt(2 / (k^2 out))`` for a convolution and
  ``1 / sqrt(in)`` for a dense projection (a formula of the shape: it is *not* ``"init"``, the
  measured rms of ``W(0)``). ``p`` is each projection of a batched group (see
  :mod:`biofa.rules._sign_concordant`).
* ``concordance`` (default 1.0): the fraction ``c`` of feedback signs that agree with ``W``; a
  fixed random ``1 - c`` of the entries have their sign reversed (Liao et al.'s sign-concordance
  controls; ``c = 0.5`` is a random-sign control, ``c = 0`` equals ``usf_flipped``).

**Under Dale's law uSF degenerates.** When the source area has E/I populations, every weight of
input column ``j`` has the sign ``s_j`` of its population, so ``sign(W) = 1 s^T`` is rank one and
the lower area receives only ``kappa s_j sum_i delta_i``: the same summed error for every unit, and
nothing at all through a softmax/cross-entropy readout, whose error sums to zero over the classes.
Use random magnitudes (``frsf``, ``brsf``) or ``Units`` areas for sign-concordant feedback in E/I
circuits.

Without batch normalisation or Batch Manhattan (:class:`biofa.train.optim.BatchManhattan`) uSF with
``norm="none"`` blows the error up by ``1/rms(W)`` per layer; Liao et al. found those two
"indispensable", Moskovitz et al. propose the norms above.

Liao, Q., Leibo, J. Z. & Poggio, T. (2016), *How important is weight symmetry in
backpropagation?*, AAAI (arXiv:1510.05067). Moskovitz, T. H., Litwin-Kumar, A. & Abbott, L. F.
(2018), *Feedback alignment in deep convolutional networks*, arXiv:1812.06488.
"""

from __future__ import annotations

from torch import Tensor

from biofa.rules._sign_concordant import SignConcordantRule
from biofa.rules.registry import register


@register
class UniformSignConcordant(SignConcordantRule):
    """uSF: the error returns through sign(W) with one uniform magnitude (Liao et al. 2016)."""

    name = "usf"

    def magnitudes(self, weight: Tensor, fb: dict[str, Tensor]) -> None:
        return None  # one uniform magnitude
