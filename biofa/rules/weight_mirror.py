r"""Weight mirrors (Akrout, Wilson, Humphreys, Lillicrap & Tweed 2019).

The error returns through a feedback matrix ``B`` of ``W``'s shape (``delta_in = B^T delta_out``,
as in feedback alignment), which learns *without data* in a **mirror phase**: the projection's
presynaptic neurons fire zero-mean noise ``x ~ N(0, sigma^2 I)``, the postsynaptic neurons relay
the response ``y = W x`` to the feedback synapses, and each feedback synapse changes by the
product of the two signals it sees (Akrout et al., Eq. 7; their ``B`` is our ``B^T``), with
weight decay:

.. math::
    \Delta B = \eta_B \Big(\frac{1}{N}\sum_{n=1}^{N} y_n x_n^\top - \lambda_{WM} B\Big),
    \qquad \mathbb{E}\Big[\frac1N \sum_n y_n x_n^\top\Big] = W\,\mathbb{E}[x x^\top]
    = \sigma^2 W ,

so in expectation :math:`\Delta B = \eta_B (\sigma^2 W - \lambda_{WM} B)`: ``B`` relaxes towards
:math:`(\sigma^2/\lambda_{WM})\,W`, by a fraction :math:`\eta_B\lambda_{WM}` per mirror step.
With the default :math:`\lambda_{WM} = \sigma^2` it converges to ``W`` itself (same scale as
backprop's feedback). For a conv projection the noise is one ``k x k`` patch per sample
(``x`` of length ``in * k * k``, ``y = W_flat x``), so the same estimate holds for the kernel.
The response is taken linearly (no nonlinearity or bias in the mirror phase).

**Noise floor.** ``B`` is an exponential average of noisy correlation estimates, so it settles at
a fixed angle to ``W`` that depends on the mirror settings only: with ``lambda_WM = sigma^2``,
``tan(angle) ~ sqrt(eta_B sigma^2 fan_in / (2 N))`` (``N`` = ``batch``, ``fan_in`` =
``in * k * k``).
Measured on MNIST (default settings): 8 degrees for a 3x3 conv from 20 channels (fan-in 180), 24
for a dense projection with fan-in 1960, 5 for fan-in 80 -- the formula's 7.6, 23.6 and 5.1. For a
wide projection raise ``batch`` or lower ``lr`` (slower tracking of ``W``).

**Schedule.** The trainer runs the rule's mirror phase after optimiser steps (the general
``FeedbackRule.after_step`` hook, called by :func:`biofa.train.fit` on every group):

* ``every`` (default 1): a mirror phase after every ``every``-th optimiser step.
* ``iterations`` (default 1): mirror steps per phase.
* ``batch`` (default 256): noise samples ``N`` per mirror step.
* ``noise`` (default 1.0): the noise standard deviation ``sigma``.
* ``lr`` (default 0.05): the mirror learning rate ``eta_B``.
* ``decay`` (default ``-1``: use ``sigma**2``): ``lambda_WM``.
* ``warmup`` (default 0): mirror steps at initialisation, before any training (Akrout et al.'s
  code mirrors once over a data set's worth of noise before training starts).

The noise of a mirror phase is drawn from a generator derived from the run's seed, the group and
the optimiser step, and ``B`` is a (non-learned) feedback tensor, so checkpoints capture the state
and a resumed run continues bit-identically. ``B`` starts as feedback alignment's draw
``N(0, gain^2 / fan_in)`` (option ``gain``, default ``None``: ``sqrt(2)``; the circuit's ``init``
convention when it is not He-normal). The optimisers never touch ``B``
(``requires_grad=False``). Each mirror step costs one ``N x fan_in`` by ``fan_in x out`` product
and one ``out x N`` by ``N x fan_in`` product.

Akrout, M. et al. (2019), *Deep learning without weight transport*, NeurIPS 32
(arXiv:1904.05391), Section 4.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from biofa.rules._base import AfterStep, Feedback, FeedbackContext, FeedbackRule
from biofa.rules.initializers import draw_like
from biofa.rules.registry import register


def mirror_step(
    b: Tensor,
    weight: Tensor,
    generator: torch.Generator,
    *,
    batch: int,
    noise: float,
    lr: float,
    decay: float,
) -> None:
    """One mirror step on ``b`` in place (``weight``'s shape; conv kernels as flat rows)."""
    w = weight.reshape(weight.shape[0], -1)
    x = torch.randn(batch, w.shape[1], generator=generator, device=w.device, dtype=w.dtype)
    x = x * noise
    y = x @ w.t()
    corr = (y.t() @ x) / batch
    b.mul_(1.0 - lr * decay).add_(corr.view_as(b), alpha=lr)


@register
class WeightMirror(FeedbackRule, AfterStep):
    """Weight mirror: B learns W from the correlation of injected noise in a mirror phase."""

    name = "weight_mirror"
    defaults = {
        "every": 1,
        "iterations": 1,
        "batch": 256,
        "noise": 1.0,
        "lr": 0.05,
        "decay": -1.0,
        "warmup": 0,
        "gain": None,
    }

    @classmethod
    def check_options(cls, options: dict[str, Any], where: str) -> None:
        super().check_options(options, where)
        for key in ("every", "iterations", "batch"):
            value = options.get(key, cls.defaults[key])
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{where}: {key}={value!r} for rule 'weight_mirror' must be an int >= 1"
                )
        warmup = options.get("warmup", 0)
        if not isinstance(warmup, int) or warmup < 0:
            raise ValueError(
                f"{where}: warmup={warmup!r} for rule 'weight_mirror' must be an int >= 0"
            )
        for key in ("noise", "lr"):
            value = options.get(key, cls.defaults[key])
            if not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{where}: {key}={value!r} for rule 'weight_mirror' must be > 0")

    @property
    def _kwargs(self) -> dict[str, float | int]:
        o = self.options
        decay = o["decay"] if o["decay"] >= 0 else o["noise"] ** 2
        return {"batch": o["batch"], "noise": o["noise"], "lr": o["lr"], "decay": decay}

    def init_feedback(
        self, weight: Tensor, generator: torch.Generator, context: FeedbackContext
    ) -> dict[str, Feedback]:
        b = draw_like(weight, generator, self.options["gain"], context)
        w = weight.detach().float().cpu()
        for _ in range(self.options["warmup"]):
            mirror_step(b, w, generator, **self._kwargs)
        return {"B": Feedback(b.to(weight.device, weight.dtype), learned=False)}

    def effective_feedback(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        return fb["B"]

    def after_step(
        self, weight: Tensor, fb: dict[str, Tensor], generator: torch.Generator, step: int
    ) -> None:
        if step % self.options["every"]:
            return
        b = fb["B"]
        for _ in range(self.options["iterations"]):
            mirror_step(b, weight.to(b.dtype), generator, **self._kwargs)
