"""Batched projection ops with a pluggable backward.

One generic :class:`torch.autograd.Function`, :class:`ProjectionFunction`, serves every op kind
(``linear``, ``conv2d``) and every rule: its forward is the plain op; its backward computes

.. math::
    \\delta_{in} = \\mathrm{op\\_input\\_grad}(\\delta_{out}, B_{eff}), \\quad
    \\nabla W = \\mathrm{op\\_weight\\_grad}(x, \\delta_{out}), \\quad
    \\nabla b = \\textstyle\\sum \\delta_{out}

with ``B_eff = rule.effective_feedback(W, fb)``, and returns the rule's pseudo-gradients as the
gradients of the feedback tensors, which come in as inputs of ``apply``. For a conv the three are
ONE ``aten.convolution_backward`` call with ``B_eff`` in the weight slot: the weight gradient does
not depend on the weight's values, so a feedback rule costs exactly backprop's arithmetic.

Mixed precision: under autocast the forward casts ``x`` and ``W`` to the autocast dtype itself and
saves the cast tensors (as autocast would); the backward computes in the dtype of the incoming
error and returns gradients in each input's own dtype. This is what ``torch.amp.custom_fwd`` /
``custom_bwd`` do, but for every device type (CPU bf16 too).

Direct rules use two small Functions: :class:`CaptureOutputError` stores the readout's error in an
:class:`ErrorSlot` on its way back, and :class:`DeliverDirectError` replaces the error arriving at a
hidden area's output with the rule's ``deliver(e, fb)``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from biofa.rules._base import LocalSignals, overrides
from biofa.rules.backprop import Backprop


class exact_gradients:  # noqa: N801 - used as a context manager, like torch.no_grad
    """Within it, backward passes compute exact gradients whatever the rules (shadow passes).

    :class:`ProjectionFunction` sends the error back through ``W`` itself (and from every
    projection, even one reading an area a direct rule feeds), computes no feedback
    pseudo-gradients, and :class:`DeliverDirectError` passes the true error through. A graph built
    once can so be differentiated twice, with the rules and exactly (:mod:`biofa.measure.shadow`).
    Process-wide (backward may run on autograd's device threads), not re-entrant across threads.
    """

    active = False

    def __enter__(self) -> None:
        self._before, exact_gradients.active = exact_gradients.active, True

    def __exit__(self, *exc: object) -> None:
        exact_gradients.active = self._before


@dataclass(frozen=True)
class LinearOp:
    """``y = x W^T + b`` for ``x`` of shape ``(N, in)``, ``W`` of shape ``(out, in)``."""

    kind = "linear"

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, weight, bias)

    def input_grad(self, grad_out: Tensor, feedback: Tensor, input_shape) -> Tensor:
        return grad_out @ feedback

    def weight_grad(self, x: Tensor, grad_out: Tensor, weight_shape) -> Tensor:
        return grad_out.t() @ x

    def grads(self, grad_out, x, feedback, mask):
        gx = self.input_grad(grad_out, feedback, x.shape) if mask[0] else None
        gw = self.weight_grad(x, grad_out, feedback.shape) if mask[1] else None
        gb = grad_out.sum(0) if mask[2] else None
        return gx, gw, gb


@dataclass(frozen=True)
class Conv2dOp:
    """A 2-D convolution with ``stride`` and ``padding`` (no dilation, one group)."""

    stride: int
    padding: int
    kind = "conv2d"

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(x, weight, bias, self.stride, self.padding)

    def grads(self, grad_out, x, feedback, mask):
        bias_sizes = [feedback.shape[0]] if mask[2] else None
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad_out,
            x,
            feedback,
            bias_sizes,
            [self.stride] * 2,
            [self.padding] * 2,
            [1, 1],
            False,
            [0, 0],
            1,
            list(mask),
        )
        return gx, gw, gb

    def input_grad(self, grad_out: Tensor, feedback: Tensor, input_shape) -> Tensor:
        return self.grads(
            grad_out, _shape_only(input_shape, grad_out), feedback, (True, False, False)
        )[0]

    def weight_grad(self, x: Tensor, grad_out: Tensor, weight_shape) -> Tensor:
        return self.grads(grad_out, x, _shape_only(weight_shape, grad_out), (False, True, False))[1]


def _shape_only(shape, like: Tensor) -> Tensor:
    """A tensor of ``shape`` whose values are never read (expand of a scalar: no memory)."""
    return like.new_zeros(()).expand(tuple(shape))


def _autocast_dtype(x: Tensor) -> torch.dtype | None:
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


class ProjectionFunction(torch.autograd.Function):
    """``op(x, W, b)`` forward; the rule's feedback on the way back (module docstring).

    Under ``torch.func.vmap`` over stacked weights (many seeds as one batched computation) its
    ``vmap`` rule applies it once to the stacked tensors with a seed-batched op (a batched matrix
    product, a grouped convolution) and the rule's functions vmapped over the seeds
    (:func:`biofa.nn.seed_batched.batched_projection`), so the backward is one kernel per projection
    too.
    """

    @staticmethod
    def forward(x, weight, bias, op, rule, send_error: bool, names: tuple[str, ...], *fb):
        dtype = _autocast_dtype(x)
        if dtype is None:  # no autocast context to leave: saves ~10% of the Function's overhead
            return op.forward(x, weight, bias)
        x, w, b = x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            return op.forward(x, w, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, op, rule, send_error, names, *fb = inputs
        dtype = _autocast_dtype(x)
        if dtype is not None:  # save x as forward used it (as autocast would); usually a no-op,
            x = _as(x, dtype)  # since under autocast the previous area's output is already cast
        ctx.save_for_backward(x, weight, *fb)
        ctx.op, ctx.rule, ctx.names, ctx.send_error = op, rule, names, send_error
        ctx.has_bias = bias is not None

    @staticmethod
    def vmap(info, in_dims, x, weight, bias, op, rule, send_error, names, *fb):
        from biofa.nn.seed_batched import batched_projection  # lazily: only under torch.func.vmap

        return batched_projection(info, in_dims, x, weight, bias, op, rule, send_error, names, *fb)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, *fb_list = ctx.saved_tensors
        fb = dict(zip(ctx.names, fb_list))
        dtype = grad_out.dtype
        exact = exact_gradients.active
        need_x = ctx.needs_input_grad[0] and (ctx.send_error or exact)
        need_w = ctx.needs_input_grad[1]
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        learned = [n for n, need in zip(ctx.names, ctx.needs_input_grad[7:]) if need and not exact]
        gx = None
        if need_x and not exact and overrides(ctx.rule, "error_through"):
            gx = ctx.rule.error_through(grad_out, weight, fb, ctx.op, tuple(x.shape))
        send = need_x and not exact and gx is None
        feedback = ctx.rule.effective_feedback(weight, fb) if send else weight
        x = _as(x, dtype)
        gx_op, gw, gb = ctx.op.grads(
            grad_out, x, _as(feedback, dtype),
            (need_x and gx is None, need_w or bool(learned), need_b),
        )
        gx = gx_op if gx is None else _as(gx, dtype)
        fb_grads: dict[str, Tensor] = {}
        if learned:
            local = LocalSignals(x, grad_out, weight, gw, ctx.op)
            fb_grads = ctx.rule.feedback_grads(local, fb)
        return (
            None if gx is None else gx,
            _as(gw, weight.dtype) if need_w else None,
            _as(gb, weight.dtype) if need_b else None,
            None,
            None,
            None,
            None,
            *[_cast(fb_grads.get(n), t) if n in learned else None for n, t in fb.items()],
        )


# Function.apply binds the arguments to forward's signature on every call (for functorch-style
# Functions, which ProjectionFunction is so that vmap works); ``inspect.signature`` rebuilds it each
# time unless the function carries ``__signature__``: precomputed, it saves a quarter of the Python
# calls of a step (docs/benchmarks.md, section 2).
ProjectionFunction.forward.__signature__ = inspect.signature(ProjectionFunction.forward)


def _cast(grad: Tensor | None, like: Tensor) -> Tensor | None:
    return None if grad is None else _as(grad, like.dtype)


def _as(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t.to(dtype)`` without the call when it is already ``dtype`` (a Python-overhead saving)."""
    return t if t.dtype == dtype else t.to(dtype)


def project(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    op: Any,
    rule: Any,
    feedback: dict[str, Tensor],
    send_error: bool = True,
) -> Tensor:
    """Apply ``op`` with ``rule``'s feedback (see :class:`ProjectionFunction`).

    Fast path: a projection that learns by backprop (``B_eff = W``, no feedback tensors) and sends
    its error back is the plain op under native autograd -- the same numbers, with no Python in
    the backward pass (the custom Function costs ~0.3 ms of host time per projection and step,
    which is most of a small network's step on a GPU; ``docs/benchmarks.md``).
    """
    if send_error and not feedback and type(rule) is Backprop:
        return op.forward(x, weight, bias)
    names = tuple(feedback)
    return ProjectionFunction.apply(
        x, weight, bias, op, rule, send_error, names, *feedback.values()
    )


class ErrorSlot:
    """Holds the readout's error during one backward pass (for direct rules)."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: Tensor | None = None


class CaptureOutputError(torch.autograd.Function):
    """Identity forward; stores the incoming error (dL/dlogits) in ``slot`` on the way back."""

    @staticmethod
    def forward(ctx, logits, slot: ErrorSlot):
        ctx.slot = slot
        return logits.view_as(logits)

    @staticmethod
    def backward(ctx, grad):
        ctx.slot.error = grad
        return grad, None


class DeliverDirectError(torch.autograd.Function):
    """Identity forward; on the way back the area receives ``rule.deliver(e, fb)`` instead."""

    @staticmethod
    def forward(ctx, h, slot: ErrorSlot, rule, names: tuple[str, ...], *fb):
        ctx.slot, ctx.rule, ctx.names = slot, rule, names
        ctx.area_shape = tuple(h.shape[1:])
        ctx.save_for_backward(*fb)
        return h.view_as(h)

    @staticmethod
    def backward(ctx, grad):
        if exact_gradients.active:
            return (grad, None, None, None, *[None] * len(ctx.names))
        error = ctx.slot.error
        if error is None:
            raise RuntimeError(
                "direct feedback: the readout error was not captured before this "
                "area's backward (is the area downstream of the readout?)"
            )
        fb = dict(zip(ctx.names, ctx.saved_tensors))
        delivered = ctx.rule.deliver(error, fb, ctx.area_shape)
        learned = ctx.rule.feedback_grads(error, fb) if any(ctx.needs_input_grad[4:]) else {}
        dtype = grad.dtype if grad is not None else delivered.dtype
        return (
            delivered.to(dtype),
            None,
            None,
            None,
            *[_cast(learned.get(n), t) for n, t in fb.items()],
        )


class CrossNonlinearity(torch.autograd.Function):
    """``activation(pre)`` forward; on the way back ``rule.cross_nonlinearity(pre, grad, act)``.

    For an area whose outgoing pathways' rule defines how the error crosses the area's
    nonlinearity (EKDAA's target differences). Under :class:`exact_gradients` the derivative
    (autograd through ``activation``) is used instead.
    """

    @staticmethod
    def forward(ctx, pre, activation, rule):
        ctx.activation, ctx.rule = activation, rule
        ctx.save_for_backward(pre)
        return pre.clone() if activation is None else activation(pre)

    @staticmethod
    def backward(ctx, grad):
        (pre,) = ctx.saved_tensors
        crossed = None
        if not exact_gradients.active:
            crossed = ctx.rule.cross_nonlinearity(pre, grad, ctx.activation)
        if crossed is None and ctx.activation is not None:
            with torch.enable_grad():
                p = pre.detach().requires_grad_(True)
                (crossed,) = torch.autograd.grad(ctx.activation(p), p, grad)
        return (grad if crossed is None else crossed.to(grad.dtype)), None, None
