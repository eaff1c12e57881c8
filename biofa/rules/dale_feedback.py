r"""Fixed-sign E/I feedback under Dale's law: every feedback weight takes its *presynaptic*
population's sign.

A feedback pathway ``upper -> lower`` is a set of synapses from the upper area's neurons (which send
the error down) onto the lower area's. Under Dale's law each of those synapses has the sign of its
presynaptic population, fixed for the whole run. ``B`` has ``W``'s shape ``(out, in[, k, k])``;
row ``i`` of ``B`` holds the synapses of upper-area unit (channel) ``i``, so

.. math:: B_{ij} = s_i\,|V_{ij}|, \qquad s_i = +1 \text{ (E)}, -1 \text{ (I)}, \qquad
          \delta_{in} = B^\top \delta_{out},

with ``s_i`` the sign of unit ``i``'s population in the upper area (``E(n)``, ``I(m)``). The upper
area must consist of E/I populations; a pathway from an area with ``Units`` (or from the readout)
is a ``ValueError`` naming the pathway -- unless option ``inhibitory=f`` is given: then the
pathway's presynaptic neurons form their own populations, the last ``round(f n)`` of the ``n``
upper units (channels) inhibitory and the rest excitatory, whatever the area's forward
populations (feedback-projecting E/I neurons in an area of ``Units``; no forward Dale constraint).

Compare forward Dale: ``W_ij = s_j |V_ij|`` (sign by *column*, the lower area's populations).
Sign-concordant feedback needs ``sign(B) = sign(W)``; fixed-sign feedback keeps that only where
``s_i = s_j``, giving up sign concordance, which Moskovitz et al. (2018) report hurts learning.

``|V|`` starts as ``|R|``, ``R_ij ~ N(0, gain^2 / fan_in)`` -- feedback alignment's draw.
Options:

* ``learned`` (default ``False``): fixed magnitudes (feedback alignment with Dale-signed rows), or
  magnitudes learned by the Kolen-Pollack rule: ``B`` receives the same update as ``W``
  (pseudo-gradient ``g_B = delta_out^T x``, local to the synapse; Kolen & Pollack 1994, Akrout et
  al. 2019), taken through ``B = s |V|``: ``g_V = s * sign(V) * g_B``. Any update keeps every sign
  (``V`` may cross zero, ``B`` cannot change sign), so no clamping is needed. Its learning rate and
  weight decay are the feedback optimiser's (``Train.feedback_lr``, ``feedback_weight_decay``).
* ``inhibitory`` (default ``None``): ``None`` -- signs from the upper area's populations; a
  fraction ``f`` in ``[0, 1]`` -- signs from the pathway's own populations as above.
* ``gain`` (default ``sqrt(2)``): as for :mod:`biofa.rules.feedback_alignment`.

Moskovitz, T. H., Litwin-Kumar, A. & Abbott, L. F. (2018), *Feedback alignment in deep
convolutional networks*, arXiv:1812.06488. Kolen, J. F. & Pollack, J. B. (1994), *Backpropagation
without weight transport*, ICNN. Akrout, M. et al. (2019), *Deep learning without weight
transport*, NeurIPS.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from biofa.rules._base import (
    Feedback,
    FeedbackContext,
    FeedbackRule,
    LocalSignals,
)
from biofa.rules.initializers import draw_like
from biofa.rules.registry import register


@register
class DaleFeedback(FeedbackRule):
    """Dale's-law feedback: each feedback weight has its upper-area population's sign, fixed."""

    name = "dale_feedback"
    defaults = {"gain": None, "learned": False, "inhibitory": None}

    @classmethod
    def check_options(cls, options: dict[str, Any], where: str) -> None:
        super().check_options(options, where)
        learned = options.get("learned", False)
        if not isinstance(learned, bool):
            raise ValueError(
                f"{where}: learned={learned!r} for rule 'dale_feedback' must be True or False"
            )
        f = options.get("inhibitory")
        if f is not None and (
            isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 <= f <= 1.0
        ):
            raise ValueError(
                f"{where}: inhibitory={f!r} for rule 'dale_feedback' must be None "
                "(signs from the upper area's populations) or a fraction in [0, 1]"
            )

    def init_feedback(
        self,
        weight: Tensor,
        generator: torch.Generator,
        context: FeedbackContext,
    ) -> dict[str, Feedback]:
        v = draw_like(weight, generator, self.options["gain"], context).abs()
        sign = self._row_signs(weight.shape[0], context).view(-1, *([1] * (weight.dim() - 1)))
        return {
            "V": Feedback(v.to(weight.device, weight.dtype), learned=self.options["learned"]),
            "sign": Feedback(sign.to(weight.device, weight.dtype)),
        }

    def _row_signs(self, rows: int, context: FeedbackContext) -> Tensor:
        f = self.options["inhibitory"]
        if f is not None:
            inh = int(round(f * rows))
            return torch.tensor([1.0] * (rows - inh) + [-1.0] * inh)
        if len(context.out_signs) != rows or 0 in context.out_signs:
            pathways = ", ".join(f"{context.upper}->{lower}" for lower in context.lowers)
            raise ValueError(
                f"feedback pathway {pathways}: rule 'dale_feedback' gives each feedback weight the "
                f"sign of its presynaptic population in the upper area {context.upper!r}, but "
                f"{context.upper!r} has unconstrained units (Units, or the readout); declare it "
                "with E(n), I(m) populations, give the pathway its own with inhibitory=<fraction>, "
                "or use another rule for this pathway"
            )
        return torch.tensor(context.out_signs, dtype=torch.float32)

    def effective_feedback(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        return fb["sign"] * fb["V"].abs()

    def feedback_grads(self, local: LocalSignals, fb: dict[str, Tensor]) -> dict[str, Tensor]:
        g_b = local.weight_grad
        return {"V": g_b * fb["sign"].to(g_b.dtype) * torch.sign(fb["V"]).to(g_b.dtype)}
