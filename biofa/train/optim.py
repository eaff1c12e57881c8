r"""Batch Manhattan (Liao, Leibo & Poggio 2016): update by the *sign* of the batch gradient.

For every parameter ``w`` with accumulated mini-batch gradient ``g`` (whatever produced it:
backprop or any feedback rule's error),

.. math::
    d_t = \operatorname{sign}(g_t) + \lambda\, w_t, \qquad
    v_t = \mu\, v_{t-1} + d_t, \qquad
    w_{t+1} = w_t - \eta\, v_t ,

with step size ``lr`` (:math:`\eta`), ``momentum`` (:math:`\mu`) and ``weight_decay``
(:math:`\lambda`); ``v_0 = d_0``. With ``momentum=0`` and ``weight_decay=0`` every weight moves by
exactly ``lr`` against its gradient's sign (zero gradient: no move), so the magnitude of the error
a feedback rule delivers no longer matters -- the reason Liao et al. found BM (or batch norm)
"indispensable" for asymmetric feedback. Liao et al. use BM with momentum and weight decay; we
could not confirm from the paper whether the decay term enters before or after the sign, so it is
added after it (as above: the sign is taken of the loss gradient only, like decoupled decay in
sign-based optimisers) and the momentum buffer accumulates the signed step as ``torch.optim.SGD``
accumulates gradients.

Liao, Q., Leibo, J. Z. & Poggio, T. (2016), *How important is weight symmetry in
backpropagation?*, AAAI (arXiv:1510.05067).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["BatchManhattan"]


class BatchManhattan(torch.optim.Optimizer):
    """``w -= lr * v``, ``v = momentum * v + sign(grad) + weight_decay * w`` (module docstring).

    Parameters
    ----------
    params
        Parameters or parameter groups, as for any ``torch.optim.Optimizer``.
    lr
        Step size: how far every weight moves per step (with no momentum or decay).
    momentum
        Momentum factor in ``[0, 1)``.
    weight_decay
        L2 penalty coefficient, added to the signed step.
    """

    def __init__(
        self, params: Iterable[Any], lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        if not lr > 0:
            raise ValueError(f"BatchManhattan: lr={lr!r} must be positive")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"BatchManhattan: momentum={momentum!r} must be in [0, 1)")
        if not weight_decay >= 0:
            raise ValueError(f"BatchManhattan: weight_decay={weight_decay!r} must be >= 0")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = torch.sign(p.grad)
                if decay:
                    d = d.add(p, alpha=decay)
                if momentum:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d.clone()
                    else:
                        buf.mul_(momentum).add_(d)
                    d = buf
                p.add_(d, alpha=-lr)
        return loss
