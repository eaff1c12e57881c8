r"""Error-kernel driven activation alignment, EKDAA (Zee, Ororbia, Mali & Nwogu 2022/2023).

EKDAA trains a CNN without derivatives of its activation functions -- so it can train through a
non-differentiable one such as the signum -- using learned **error kernels** ``E`` (one per
projection, ``W``'s shape) that carry error maps down, and targets built from them. For a chain
``z_{l-1} -> h_l = W_l * z_{l-1} -> z_l = phi(h_l)`` and readout probabilities ``z_L``:

.. math::
    \begin{aligned}
    e_L &= z_L - y && \text{readout error (softmax minus one-hot)} \\
    d_l &= E_{l+1}^{\top} * e_{l+1} && \text{error map through the error kernel} \\
    y_l &= \phi(h_l - \beta\, d_l) && \text{target activity of area } l \\
    e_l &= z_l - y_l = \phi(h_l) - \phi(h_l - \beta\, d_l) && \text{local error, no } \phi' \\
    \Delta W_l &= -\eta\, e_l * z_{l-1}, \quad
    \Delta E_l = -\eta\, \gamma\, (e_l * z_{l-1}) && \text{error kernels follow the weights}
    \end{aligned}

``*`` is the convolution (``E^T *`` the transposed convolution with kernel ``E``, for a dense
projection a matrix product). The weight update is the local product of the area's error with its
input (``conv2d_weight``), and the error kernel gets ``gamma`` times the same update (in the
authors' orientation ``E = W^T`` and ``Delta E = gamma (Delta W)^T``). Defaults as in the
authors' release: ``beta = 0.9``, ``gamma = 0.1``.

**In biofa.** ``d_l`` is this rule's layer-wise feedback (``effective_feedback = E``,
pseudo-gradient ``gamma * G`` with ``G`` the weight gradient). The target difference replaces the
derivative of the lower area's nonlinearity: the rule is a
:class:`~biofa.rules.CrossesNonlinearity`, whose crossing hook the compiler inserts into every
hidden area whose outgoing projections use ``ekdaa`` (through
:class:`biofa.nn.function.CrossNonlinearity`): the error at
the area's pre-activation is ``phi(h) - phi(h - beta d)`` instead of ``phi'(h) d``. For a smooth
``phi`` and small ``beta d`` this is ``beta phi'(h) d`` (feedback alignment with a learned
kernel); for ``phi = sign`` (area ``nonlinearity="sign"``) it is ``+-2`` exactly where the
target flips the unit and 0 elsewhere -- no derivative is ever taken. An identity area gives
``beta d``. Max pooling routes the error map to the pooled winners (the max-pool's own backward),
batch norm (if any) its own backward.

*Scale.* biofa's loss is the batch-mean cross-entropy, whose readout error is ``e_L / N``; the
paper's errors are per example. For a non-linear ``phi`` (sign!) the scale matters, so the target
is built from the per-example error and the result divided by ``N`` again:
``e_l = [phi(h) - phi(h - beta N d)] / N`` -- exactly the paper's ``e_l`` (and update) up to the
overall ``1/N`` of a mean loss, which only rescales the learning rate.

Options: ``beta`` (0.9), ``gamma`` (0.1), ``init``: ``"random"`` (default; ``E ~ N(0,
gain^2/fan_in)``, independent of ``W``; drawn by the circuit's ``init`` convention when it is not
He-normal) or ``"copy"`` (``E(0) = W(0)``, what the authors' released code does -- weight
transport at initialisation), ``gain`` (default ``None``: ``sqrt(2)`` under He-normal).

**Measured** (``circuits/ekdaa_fashion.py``: tanh CNN conv32-conv32-pool-conv64-pool-fc128,
Fashion-MNIST, 2 epochs, batch 50, SGD 0.05 / momentum 0.85, 3 seeds; test accuracy %):
backprop 90.7 +- 0.2, ``ekdaa`` 85.1 +- 1.2 (feedback angle of the conv kernels 85-91 degrees:
with ``gamma = 0.1`` a random ``E`` aligns slowly), ``ekdaa`` with ``init="copy"`` 89.1 +- 0.6
(16-38 degrees), feedback alignment 78.8 +- 0.7. The paper's "nearly matches backprop" is
reproduced with the release's initialisation; starting ``E`` at random (no weight transport at
all) costs about 4 points after 2 epochs. The signum network (``activation=sign``, batch norm):
60.3 % after 2 epochs (1 seed).

*Sources.* The equations are those of the authors' release (``EKDAA_Model.backward`` and
``update`` in github.com/tzee/EKDAA-Release), which is also what the paper's description of targets
built from error kernels and of ``Delta E = gamma Delta W^T`` says; the paper's own equation
numbers could not be checked here (its full text was not available to us). Not reproduced from
that TensorFlow code: its ad-hoc rescalings of conv error maps and conv weight updates (divide by
the tensor's maximum when it exceeds 1, and by ``in * out`` channels), its bilinear upsampling of
targets through max pooling (pooling there acts on pre-activations) and biases updated by
``e / max(e)``.

Zee, T., Ororbia, A. G., Mali, A. & Nwogu, I. (2023), *A robust backpropagation-free framework for
images*, Transactions on Machine Learning Research (arXiv:2206.01820).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from biofa.rules._base import (
    CrossesNonlinearity,
    Feedback,
    FeedbackContext,
    FeedbackRule,
    LocalSignals,
)
from biofa.rules.initializers import draw_like
from biofa.rules.registry import register


@register
class ErrorKernels(FeedbackRule, CrossesNonlinearity):
    """EKDAA: learned error kernels carry error maps; targets replace activation derivatives."""

    name = "ekdaa"
    defaults = {"beta": 0.9, "gamma": 0.1, "init": "random", "gain": None}

    @classmethod
    def check_options(cls, options: dict[str, Any], where: str) -> None:
        super().check_options(options, where)
        init = options.get("init", "random")
        if init not in ("random", "copy"):
            raise ValueError(f"{where}: init={init!r} for rule 'ekdaa' is not one of random, copy")
        for key in ("beta", "gamma"):
            value = options.get(key, cls.defaults[key])
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{where}: {key}={value!r} for rule 'ekdaa' must be >= 0")

    def init_feedback(
        self, weight: Tensor, generator: torch.Generator, context: FeedbackContext
    ) -> dict[str, Feedback]:
        if self.options["init"] == "copy":
            e = weight.detach().clone()
        else:
            e = draw_like(weight, generator, self.options["gain"], context)
        return {"E": Feedback(e, learned=True)}

    def effective_feedback(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        return fb["E"]

    def feedback_grads(self, local: LocalSignals, fb: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"E": local.weight_grad * self.options["gamma"]}

    def cross_nonlinearity(self, pre: Tensor, grad: Tensor, activation: Any) -> Tensor:
        beta = self.options["beta"]
        if activation is None:
            return grad * beta
        n = pre.shape[0]
        if pre.dtype in (torch.float16, torch.bfloat16):  # a difference: no half precision
            pre, grad = pre.float(), grad.float()
        return (activation(pre) - activation(pre - (beta * n) * grad)) / n
