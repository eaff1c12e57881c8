r"""Optimisers and schedules: the forward and feedback optimisers of a run, learning-rate and
weight-decay schedules, and Batch Manhattan.

Batch Manhattan (Liao, Leibo & Poggio 2016) updates by the *sign* of the batch gradient.

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

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from biofa.train.config import Train

if TYPE_CHECKING:
    from biofa.nn import CompiledCircuit

__all__ = ["BatchManhattan", "build_optimizers", "lr_factor", "set_weight_decay"]


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


def _optimizer(kind: str, params, lr: float, momentum: float, weight_decay: float, nesterov: bool):
    if not params:
        return None
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
    if kind == "manhattan":
        return BatchManhattan(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if kind == "adamw":  # decoupled decay: W and a Kolen-Pollack B get identical Adam updates
        return torch.optim.AdamW(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=nesterov and momentum > 0,
    )


def build_optimizers(model: CompiledCircuit, train: Train) -> list[torch.optim.Optimizer]:
    """The forward optimiser and, if any feedback tensor is learned, the feedback one.

    ``model`` needs only ``forward_parameters()`` and ``feedback_parameters()`` (a compiled circuit,
    or the stacked tensors of many seeds).
    """
    forward = [p for p in model.forward_parameters() if p.requires_grad]
    learned = [p for p in model.feedback_parameters() if p.requires_grad]
    fb_kind = train.feedback_optimizer or train.optimizer

    def pick(value: float, default: float) -> float:
        return default if value < 0 else value

    opts = [
        _optimizer(
            train.optimizer, forward, train.lr, train.momentum, train.weight_decay, train.nesterov
        ),
        _optimizer(
            fb_kind,
            learned,
            pick(train.feedback_lr, train.lr),
            pick(train.feedback_momentum, train.momentum),
            pick(train.feedback_weight_decay, train.weight_decay),
            train.nesterov,
        ),
    ]
    return [o for o in opts if o is not None]


def lr_factor(train: Train, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The schedule's multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    if train.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    if train.schedule == "step":
        epoch = step // max(steps_per_epoch, 1)
        return train.gamma ** sum(epoch >= m for m in train.milestones)
    return 1.0


def set_weight_decay(optimizers: list[torch.optim.Optimizer], train: Train, epoch: int) -> None:
    """Weight decay of ``epoch``: each group's initial decay times ``weight_decay_gamma`` per
    milestone in ``weight_decay_milestones`` reached (a pure function of the epoch: resumable)."""
    if not train.weight_decay_milestones:
        return
    factor = train.weight_decay_gamma ** sum(epoch >= m for m in train.weight_decay_milestones)
    for o in optimizers:
        for group in o.param_groups:
            base = group.setdefault("initial_weight_decay", group["weight_decay"])
            group["weight_decay"] = base * factor
