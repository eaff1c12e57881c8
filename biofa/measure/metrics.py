r"""Alignment metrics as pure tensor functions, registered in :mod:`biofa.measure.registry`.

Every function takes tensors and returns a 0-d tensor on the input's device: nothing here reads a
value back to the host, so a trainer can compute metrics inside its step and move them all to the
CPU at once (:class:`biofa.measure.record.Recorder` does that with one transfer per device).

Reductions run in float64 for accuracy, except on devices without float64 support (Apple ``mps``),
where they run in float32. Each decorated function is a registered metric whose ``inputs`` say
where the probes (``weight``, ``feedback``) or the shadow pass (``delivered_error``, ...) take its
arguments from; the training loop's own values (loss, accuracies, learning rate, wall time) are
registered at the end of this module.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from biofa.measure.registry import METRICS, MetricInfo, metric, register_metric

__all__ = [
    "METRICS",
    "MetricInfo",
    "angle",
    "error_angle",
    "feedback_angle",
    "feedback_norm",
    "feedback_update_norm",
    "frobenius_norm",
    "metric",
    "register_metric",
    "sign_concordance",
    "update_angle",
    "weight_norm",
]


def _acc_dtype(t: Tensor) -> torch.dtype:
    """Accumulation dtype: float64, or float32 on devices without float64 (``mps``)."""
    return torch.float32 if t.device.type == "mps" else torch.float64


def angle(a: Tensor, b: Tensor) -> Tensor:
    r"""Angle in degrees between two tensors of the same shape, taken as flat vectors.

    .. math::

        \theta(a, b) = \frac{180}{\pi}\arccos
                       \frac{\langle a, b\rangle}{\lVert a\rVert\,\lVert b\rVert}
                     = \frac{360}{\pi}\operatorname{atan2}\bigl(\lVert\hat a - \hat b\rVert,
                                                             \lVert\hat a + \hat b\rVert\bigr),
        \qquad \hat a = a/\lVert a\rVert,\ \hat b = b/\lVert b\rVert .

    The second form (Kahan's) is evaluated: it equals the first but stays accurate near 0° and
    180°, where ``arccos`` of a rounded cosine loses about half the digits (≈0.03° in float32).

    Parameters
    ----------
    a, b
        Tensors with the same number of elements (shapes must match).

    Returns
    -------
    Tensor
        0-d tensor in ``[0, 180]`` on ``a``'s device (float64, float32 on ``mps``); NaN if either
        input has zero norm (or contains NaN).
    """
    if a.shape != b.shape:
        raise ValueError(f"angle: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    dtype = _acc_dtype(a)
    a = a.detach().reshape(-1).to(dtype)
    b = b.detach().reshape(-1).to(dtype)
    na = torch.linalg.vector_norm(a)
    nb = torch.linalg.vector_norm(b)
    ua, ub = a / na, b / nb
    theta = 2.0 * torch.atan2(torch.linalg.vector_norm(ua - ub), torch.linalg.vector_norm(ua + ub))
    ok = (na > 0) & (nb > 0)
    return torch.where(ok, torch.rad2deg(theta), torch.full_like(theta, math.nan))


@metric(long_name="angle between feedback and forward weights", units="degree",
        inputs=("weight", "feedback"))  # fmt: skip
def feedback_angle(weight: Tensor, feedback: Tensor) -> Tensor:
    r"""Angle (degrees) between the effective feedback tensor :math:`B` and the weight :math:`W`.

    :math:`B` is what the rule uses *in place of* :math:`W` on the way back, so it has
    :math:`W`'s shape; :math:`\theta(W, B)` as in :func:`angle`. Backprop gives 0°; a random
    fixed :math:`B` starts near 90° and feedback alignment pulls :math:`W` towards it.
    """
    return angle(weight, feedback)


@metric(long_name="angle between delivered error and backprop error", units="degree",
        inputs=("delivered_error", "reference_error"))  # fmt: skip
def error_angle(delivered: Tensor, reference: Tensor) -> Tensor:
    r"""Angle (degrees) between the error a rule delivers to a layer, :math:`\delta_\text{rule}`,
    and the error backprop delivers for the same batch and weights, :math:`\delta_\text{bp}`:
    :math:`\theta(\delta_\text{rule}, \delta_\text{bp})` over all batch entries at once.
    Recorded per projection for the error at the output of its source area
    (:mod:`biofa.measure.shadow`).
    """
    return angle(delivered, reference)


@metric(long_name="angle between weight update and backprop gradient", units="degree",
        inputs=("update", "reference_update"))  # fmt: skip
def update_angle(update: Tensor, reference_grad: Tensor) -> Tensor:
    r"""Angle (degrees) between a rule's weight update :math:`\Delta W` and backprop's gradient
    :math:`\nabla_W L` for the same batch: :math:`\theta(\Delta W, \nabla_W L)`.
    """
    return angle(update, reference_grad)


@metric(long_name="sign concordance of feedback with weights", units="1",
        inputs=("weight", "feedback"))  # fmt: skip
def sign_concordance(weight: Tensor, feedback: Tensor) -> Tensor:
    r"""Fraction of entries whose feedback sign matches the weight sign.

    .. math:: c(W, B) = \frac{1}{n}\sum_{i=1}^{n}\mathbb{1}\bigl[\operatorname{sign}B_i =
              \operatorname{sign}W_i\bigr], \qquad \operatorname{sign}0 = 0 .

    An entry where both are 0 counts as concordant; an entry where exactly one is 0 does not.
    Sign-symmetric feedback (Liao et al., 2016) gives 1; random feedback about 0.5.

    Returns
    -------
    Tensor
        0-d tensor in ``[0, 1]`` (float64, float32 on ``mps``); NaN for empty tensors.
    """
    if weight.shape != feedback.shape:
        raise ValueError(
            f"sign_concordance: shapes differ: {tuple(weight.shape)} vs {tuple(feedback.shape)}"
        )
    same = torch.sign(weight.detach()) == torch.sign(feedback.detach())
    return same.to(_acc_dtype(weight)).mean()


def frobenius_norm(t: Tensor) -> Tensor:
    r"""Frobenius norm :math:`\lVert T\rVert_F = \sqrt{\sum_i T_i^2}` over all entries.

    Returns a 0-d tensor (float64, float32 on ``mps``) on ``t``'s device.
    """
    return torch.linalg.vector_norm(t.detach().reshape(-1).to(_acc_dtype(t)))


@metric(long_name="Frobenius norm of forward weights", units="1", inputs=("weight",))
def weight_norm(weight: Tensor) -> Tensor:
    r""":math:`\lVert W\rVert_F` (see :func:`frobenius_norm`)."""
    return frobenius_norm(weight)


@metric(long_name="Frobenius norm of effective feedback", units="1", inputs=("feedback",))
def feedback_norm(feedback: Tensor) -> Tensor:
    r""":math:`\lVert B\rVert_F` of the effective feedback (see :func:`frobenius_norm`)."""
    return frobenius_norm(feedback)


@metric(long_name="Frobenius norm of feedback update", units="1", inputs=("feedback_update",))
def feedback_update_norm(update: Tensor) -> Tensor:
    r""":math:`\lVert g_B\rVert_F` of the pseudo-gradient a rule gives its learned feedback tensors
    for the batch: the update direction before the learning rate (:mod:`biofa.measure.shadow`)."""
    return frobenius_norm(update)


register_metric("loss", "training loss (cross-entropy)", "1", "run")
register_metric("train_accuracy", "training accuracy", "1", "run")
register_metric("test_accuracy", "test accuracy", "1", "run")
register_metric("validation_accuracy", "accuracy on the held-out validation examples", "1", "run")
register_metric("learning_rate", "learning rate", "1", "run")
register_metric("wall_time", "wall-clock time since start of training", "s", "run")
