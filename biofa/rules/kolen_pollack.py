r"""Kolen-Pollack learning of the feedback weights (Kolen & Pollack 1994; Akrout et al. 2019).

The error returns through a learned ``B`` of ``W``'s shape, and ``B`` receives the *same* local
update as ``W``, both with weight decay:

.. math::
    \delta_{in} = B^\top \delta_{out}, \qquad
    \Delta W = -\eta\,(\delta_{out} x^\top + \lambda W), \qquad
    \Delta B = -\eta\,(\delta_{out} x^\top + \lambda B),

so :math:`\Delta(W - B) = -\eta\lambda\,(W - B)`: with plain SGD the difference shrinks
geometrically, :math:`W_t - B_t = (1-\eta\lambda)^t (W_0 - B_0)`, whatever the data, and ``B``
converges to ``W``. Akrout et al. (2019, Eqs. 16-17, in their orientation ``B`` is ``W^\top``)
show that each synapse can compute this from local signals: ``W``'s update is the product of its
pre- and postsynaptic activities ``x`` and ``delta_out``; ``B``'s (a synapse from the
``delta_out`` neuron onto the ``delta_in`` neuron) is the product of the same two signals, which it
sees from the other side. Here ``B`` has ``W``'s shape, so its pseudo-gradient is the weight
gradient itself, :attr:`LocalSignals.weight_grad` (``conv2d_weight`` for a conv projection).

**Decay and the optimiser.** The decay is the optimisers' weight decay: ``Train.weight_decay``
for ``W``, ``Train.feedback_weight_decay`` for ``B`` (default: the same). The mirrored relation
needs both tensors to get the same learning rate, momentum, schedule and decay, which the feedback
optimiser inherits by default. It holds exactly for SGD and SGD with momentum (linear,
element-wise: the difference obeys its own heavy-ball recursion driven only by
:math:`\lambda (W - B)`) and for AdamW (``Train(optimizer="adamw")``: both see the same
gradients, so their moments and Adam steps are identical, and the decoupled decay shrinks
``W - B`` by ``1 - lr * decay`` per step). With Adam's L2 decay (``"adam"``) the decay enters the
moments and the normalisation :math:`1/\sqrt{v}`, which then differ between ``W`` and ``B``:
``W - B`` still shrinks, but slowly and not geometrically (measured on digits: 90 -> 75 degrees in
300 steps where SGD reaches < 2). Optimisers that are not element-wise (LARS/LAMB's per-tensor
trust ratios, Shampoo, Muon's orthogonalisation, ...) give ``W`` and ``B`` different updates from
the same gradient and break the mirror.

Under Dale's law ``W = s|V|`` with ``V`` the optimised parameter; SGD on ``V`` moves ``W``
exactly as SGD on ``W`` while no entry of ``V`` crosses zero; at zero ``|V|`` *reflects* and
``W`` keeps its sign. An unconstrained ``B`` would follow the gradient past
zero where ``W`` cannot (and settle at ``-G/lambda`` there), so by default (option
``signs="forward"``) ``B`` carries the same per-column signs as ``W``, ``B = s_j |U|``, with ``U``
the learned tensor and pseudo-gradient ``s_j sign(U) G``. Both magnitudes then follow the same
1-Lipschitz map ``a -> |(1 - eta lambda) a - eta s G|``, so ``| |V| - |U| |`` still shrinks by at
least ``(1 - eta lambda)`` per SGD step, crossing or not. The column signs are structure (which
population each lower unit belongs to), not weights. ``signs="free"``: an unconstrained ``B``.
Columns of ``Units`` populations are unconstrained either way.

``B`` (``|U|`` under signs) starts as feedback alignment's draw, ``N(0, gain^2 / fan_in)``,
independent of ``W`` (under a circuit's ``init="xavier_uniform"``/``"kaiming_uniform"``, drawn
from that convention, :mod:`biofa.rules.initializers`). Options ``gain`` (default ``None``: the
convention's default, ``sqrt(2)`` for He-normal) and ``signs``.

Kolen, J. F. & Pollack, J. B. (1994), *Backpropagation without weight transport*, Proc. IEEE
ICNN, 1375-1380. Akrout, M., Wilson, C., Humphreys, P. C., Lillicrap, T. & Tweed, D. (2019),
*Deep learning without weight transport*, NeurIPS 32 (arXiv:1904.05391).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from biofa.rules._base import Feedback, FeedbackContext, FeedbackRule, LocalSignals
from biofa.rules.initializers import draw_like
from biofa.rules.registry import register


def column_signs(weight: Tensor, context: FeedbackContext) -> Tensor | None:
    """``W``'s per-input-column signs shaped to broadcast over it, or ``None`` if all are 0."""
    if not any(context.in_signs):
        return None
    s = torch.tensor(context.in_signs, dtype=weight.dtype, device=weight.device)
    return s.view(1, -1, *([1] * (weight.dim() - 2)))


def signed(u: Tensor, sign: Tensor) -> Tensor:
    """``s |U|`` on signed columns, ``U`` on unconstrained ones."""
    sign = sign.to(u.dtype)
    return torch.where(sign != 0, sign * u.abs(), u)


def signed_grad(g: Tensor, u: Tensor, sign: Tensor) -> Tensor:
    """The pseudo-gradient of ``U`` for a pseudo-gradient ``g`` of ``s |U|``."""
    sign = sign.to(g.dtype)
    return torch.where(sign != 0, g * sign * torch.sign(u.detach()).to(g.dtype), g)


@register
class KolenPollack(FeedbackRule):
    """Kolen-Pollack: a learned B gets W's own update; with decay on both, B converges to W."""

    name = "kolen_pollack"
    defaults = {"gain": None, "signs": "forward"}

    @classmethod
    def check_options(cls, options: dict[str, Any], where: str) -> None:
        super().check_options(options, where)
        if options.get("signs", "forward") not in ("forward", "free"):
            raise ValueError(
                f"{where}: signs={options['signs']!r} for rule 'kolen_pollack' is "
                "not one of forward, free"
            )

    def init_feedback(
        self, weight: Tensor, generator: torch.Generator, context: FeedbackContext
    ) -> dict[str, Feedback]:
        b = draw_like(weight, generator, self.options["gain"], context)
        sign = column_signs(weight, context) if self.options["signs"] == "forward" else None
        if sign is None:
            return {"B": Feedback(b, learned=True)}
        return {
            "B": Feedback(torch.where(sign != 0, b.abs(), b), learned=True),
            "b_sign": Feedback(sign, learned=False),
        }

    def effective_feedback(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        return signed(fb["B"], fb["b_sign"]) if "b_sign" in fb else fb["B"]

    def feedback_grads(self, local: LocalSignals, fb: dict[str, Tensor]) -> dict[str, Tensor]:
        g = local.weight_grad
        return {"B": signed_grad(g, fb["B"], fb["b_sign"]) if "b_sign" in fb else g}
