"""Sign constraints (Dale's law) as parametrizations.

The sign of a synapse belongs to its presynaptic population. A weight whose input channels carry
signs ``s_j`` (+1 excitatory, -1 inhibitory, 0 unconstrained) is parametrised as

.. math:: W_{ij} = s_j\\,|V_{ij}| \\quad (s_j \\neq 0), \\qquad W_{ij} = V_{ij} \\quad (s_j = 0),

with ``V`` the free parameter the optimiser updates. Every E weight is >= 0 and every I weight
<= 0 after *any* update, with no clamping inside forward and no projection step after it
(``torch.nn.utils.parametrize``, as DESIGN §3 asks). The gradient reaching ``V`` is
``s_j sign(V_ij) dL/dW_ij``; a weight can cross zero in ``V`` and come back with the same sign.

Connectivity and per-projection learning rates fold into the same parametrization:

.. math:: W = M \\circ s\\,|V|, \\qquad \\nabla_V \\leftarrow C \\circ \\nabla_V ,

with ``M`` the 0/1 mask of the synapses that exist (sparse ``p``, a user mask, and the block
structure of population wiring, :mod:`biofa.nn.layout`) -- folded into the sign buffer, so a masked
weight costs the kernels of an unmasked one -- and ``C`` the per-synapse gradient scale
(``connect(..., lr_scale=c)``), applied on the way back by :class:`ScaleGrad`.

``clamp=True`` (``Circuit(constraint="clamp")``) is the projected-gradient alternative of
Cornford et al.'s code: ``W = M \\circ s V`` with :func:`clamp_` setting ``V <- max(V, 0)`` on
signed synapses after every optimiser step (the trainer calls it through
``CompiledCircuit.after_step``). Between steps both give sign-correct weights; their updates
differ at zero (a clamped weight sticks at 0 until its gradient turns, a parametrized one
reflects: ``|V|`` bounces off 0 by at most one step), see ``docs/populations.md``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize


class ScaleGrad(torch.autograd.Function):
    """Identity forward; the gradient times ``scale`` on the way back (a per-synapse learning
    rate)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(v: Tensor, scale: Tensor) -> Tensor:
        return v.view_as(v)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[1])

    @staticmethod
    def backward(ctx, grad: Tensor):
        (scale,) = ctx.saved_tensors
        return grad * scale.to(grad.dtype), None


# the signature ``Function.apply`` binds to on every call, computed once (a saving of host time,
# as for ``biofa.nn.function.ProjectionFunction``)
ScaleGrad.forward.__signature__ = inspect.signature(ScaleGrad.forward)


class DaleSign(nn.Module):
    """``W = M s |V|`` on signed input channels, ``W = M V`` on unconstrained ones (module
    docstring); ``mask`` ``M`` and gradient scale ``grad_scale`` optional, ``clamp``: ``s V``."""

    def __init__(
        self,
        signs: Tensor,
        mask: Tensor | None = None,
        grad_scale: Tensor | None = None,
        clamp: bool = False,
    ):
        super().__init__()
        m = 1.0 if mask is None else mask.float()
        self.register_buffer("sign", signs.float() * m, persistent=False)
        self.all_signed = bool((signs != 0).all())
        #: +1 or -1 when every synapse exists and has that sign (no multiply needed), else 0
        self.uniform = (
            int(signs.flatten()[0])
            if mask is None and bool((signs == signs.flatten()[0]).all())
            else 0
        )
        self.register_buffer("free", (signs == 0).float() * m, persistent=False)
        self.clamp = clamp
        self.grad_scale: Tensor | None
        self.register_buffer("grad_scale", grad_scale, persistent=False)

    def forward(self, v: Tensor) -> Tensor:
        if self.grad_scale is not None:
            v = ScaleGrad.apply(v, self.grad_scale)
        magnitude = v if self.clamp else v.abs()
        if self.uniform:  # one sign for the whole weight (W = |V| or -|V|: no multiply)
            return magnitude if self.uniform > 0 else -magnitude
        sign = self.sign.to(v.dtype)
        if self.all_signed:
            return magnitude * sign
        return magnitude * sign + v * self.free.to(v.dtype)

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


def constrain_signs(
    module: nn.Module,
    name: str,
    signs: Tensor,
    mask: Tensor | None = None,
    grad_scale: Tensor | None = None,
    clamp: bool = False,
) -> None:
    """Register :class:`DaleSign` on ``module.<name>`` unless every channel is unconstrained and
    there is no mask or gradient scale."""
    if bool((signs == 0).all()) and mask is None and grad_scale is None:
        return
    constraint = DaleSign(signs, mask, grad_scale, clamp)
    parametrize.register_parametrization(module, name, constraint, unsafe=False)


def clamp_(module: nn.Module, name: str = "weight") -> None:
    """``V <- max(V, 0)`` on the signed synapses of a clamped :class:`DaleSign` (in place)."""
    if not parametrize.is_parametrized(module, name):
        return
    chain = getattr(module.parametrizations, name)
    dale = next((m for m in chain if isinstance(m, DaleSign)), None)
    if dale is None or not dale.clamp:
        return
    v = chain.original
    with torch.no_grad():
        if dale.all_signed:
            v.clamp_(min=0)
        else:
            v.copy_(torch.where(dale.sign != 0, v.clamp(min=0), v))


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
