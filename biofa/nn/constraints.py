"""Sign constraints (Dale's law) as parametrizations.

The sign of a synapse belongs to its presynaptic population. A weight whose input channels carry
signs ``s_j`` (+1 excitatory, -1 inhibitory, 0 unconstrained) is parametrised as

.. math:: W_{ij} = s_j\\,|V_{ij}| \\quad (s_j \\neq 0), \\qquad W_{ij} = V_{ij} \\quad (s_j = 0),

with ``V`` the free parameter the optimiser updates. Every E weight is >= 0 and every I weight
<= 0 after *any* update, with no clamping inside forward and no projection step after it
(``torch.nn.utils.parametrize``, as DESIGN §3 asks). The gradient reaching ``V`` is
``s_j sign(V_ij) dL/dW_ij``; a weight can cross zero in ``V`` and come back with the same sign.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize


class DaleSign(nn.Module):
    """``W = s * |V|`` on signed input channels, ``W = V`` on unconstrained ones."""

    def __init__(self, signs: Tensor):
        super().__init__()
        self.register_buffer("sign", signs.float(), persistent=False)
        self.all_signed = bool((signs != 0).all())
        self.register_buffer("free", (signs == 0).float(), persistent=False)

    def forward(self, v: Tensor) -> Tensor:
        sign = self.sign.to(v.dtype)
        if self.all_signed:
            return v.abs() * sign
        return v.abs() * sign + v * self.free.to(v.dtype)

    def right_inverse(self, w: Tensor) -> Tensor:
        # V = s * W keeps |V| = |W| (and V >= 0 for weights that respect their sign).
        return w * self.sign.to(w.dtype) + w * self.free.to(w.dtype)


def input_signs(signs: Sequence[int], weight_ndim: int, repeat: int = 1) -> Tensor:
    """Signs shaped to broadcast over a weight: ``(1, in)`` dense or ``(1, in, 1, 1)`` conv.

    ``repeat`` repeats each channel's sign (a dense projection reading a flattened ``C x H x W``
    area sees every channel ``H*W`` times, channel-major as ``Tensor.flatten`` lays it out).
    """
    s = torch.tensor(list(signs), dtype=torch.float32).repeat_interleave(repeat)
    return s.view(1, -1, *([1] * (weight_ndim - 2)))


def constrain_signs(module: nn.Module, name: str, signs: Tensor) -> None:
    """Register :class:`DaleSign` on ``module.<name>`` unless every channel is unconstrained."""
    if bool((signs == 0).all()):
        return
    parametrize.register_parametrization(module, name, DaleSign(signs), unsafe=False)


def balanced_init(weight: Tensor, signs: Tensor) -> Tensor:
    """Give a random weight the signs of its inputs, with E and I drive balanced.

    Signed columns take ``s_j |W_ij|``; inhibitory columns are scaled by ``n_E / n_I`` so that
    each unit's expected excitatory and inhibitory drive cancel (for inputs of similar activity);
    the whole matrix is then rescaled to the Frobenius norm of the original unconstrained draw, so
    the signal scale of the (He) initialisation is kept.
    """
    s = signs.to(weight.dtype)
    if bool((s == 0).all()):
        return weight
    flat = s.flatten()
    n_exc, n_inh = float((flat > 0).sum()), float((flat < 0).sum())
    scale = torch.ones_like(s)
    if n_exc > 0 and n_inh > 0:
        scale = torch.where(s < 0, torch.full_like(s, n_exc / n_inh), scale)
    signed = torch.where(s != 0, s * weight.abs() * scale, weight)
    return signed * (weight.norm() / signed.norm().clamp_min(1e-12))
