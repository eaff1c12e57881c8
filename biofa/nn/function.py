"""The autograd Functions of a compiled circuit: one for every projection, three for area hooks.

:class:`ProjectionFunction` serves every op kind and every layer-wise rule: its forward is the
plain op; its backward computes

.. math::
    \\delta_{in} = \\mathrm{op.input\\_grad}(\\delta_{out}, B_{eff}), \\quad
    \\nabla W = \\mathrm{op.weight\\_grad}(x, \\delta_{out}), \\quad
    \\nabla b = \\textstyle\\sum \\delta_{out}

with ``B_eff = rule.effective_feedback(W, fb)`` -- times the group's feedback mask ``M_B`` when it
has one (the synapses that exist and, for a pathway to or from a population, those that carry its
error; :mod:`biofa.nn.group`) -- and returns the rule's pseudo-gradients as the gradients of the
feedback tensors, which come in as inputs of ``apply``. For a conv the three are
ONE ``aten.convolution_backward`` call with ``B_eff`` in the weight slot: the weight gradient does
not depend on the weight's values, so a feedback rule costs exactly backprop's arithmetic.

Mixed precision: under autocast the forward casts ``x`` and ``W`` to the autocast dtype itself and
saves the cast tensors (as autocast would); the backward computes in the dtype of the incoming
error and returns gradients in each input's own dtype. This is what ``torch.amp.custom_fwd`` /
``custom_bwd`` do, but for every device type (CPU bf16 too).

Area hooks (:class:`biofa.rules.AreaHook`, the area-level extension point): :class:`CaptureError`
keeps the readout's error in an :class:`ErrorBus` (one per forward pass) on its way back,
:class:`DeliverAreaError` replaces the error arriving at an area's output with a
:class:`~biofa.rules.DeliverError` hook's, and :class:`CrossNonlinearity` replaces the derivative
of an area's nonlinearity with a :class:`~biofa.rules.CrossingHook`'s.

Exact gradients: every Function receives its circuit's :class:`GradientMode`; while it is exact
(``CompiledCircuit.exact_gradients()``) backward passes compute backprop's gradients whatever the
rules -- the error goes back through ``W`` itself, hooks pass the true error through -- so a
graph built once can be differentiated twice, with the rules and exactly (the shadow pass of
:mod:`biofa.measure.shadow`). The mode belongs to the model, not to the process.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor
from torch.func import vmap

from biofa.kinds import ProjectionOp
from biofa.rules import (
    CrossingHook,
    CustomErrorPath,
    DeliverError,
    FeedbackRule,
    LocalSignals,
    NativeBackward,
)

__all__ = [
    "CaptureError",
    "CrossNonlinearity",
    "DeliverAreaError",
    "ErrorBus",
    "GradientMode",
    "PerSeed",
    "ProjectionFunction",
    "project",
]

_FEEDBACK = 9  # index of the first feedback tensor among ProjectionFunction.forward's arguments


class GradientMode:
    """Whether backward passes through one compiled circuit use its rules (default) or exact
    gradients. Read at backward time, so one forward graph serves both."""

    __slots__ = ("exact",)

    def __init__(self) -> None:
        self.exact = False


def _autocast_dtype(x: Tensor) -> torch.dtype | None:
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def _as(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t.to(dtype)`` without the call when it is already ``dtype`` (a Python-overhead saving)."""
    return t if t.dtype == dtype else t.to(dtype)


def _cast(grad: Tensor | None, like: Tensor) -> Tensor | None:
    return None if grad is None else _as(grad, like.dtype)


class ProjectionFunction(torch.autograd.Function):
    """``op(x, W, b)`` forward; the rule's feedback on the way back (module docstring).

    Under ``torch.func.vmap`` over stacked weights (many seeds as one batched computation) its
    ``vmap`` rule applies it once to the stacked tensors with the op's seed-batched form and the
    rule's functions vmapped over the seeds (:class:`PerSeed`), so the backward is one kernel per
    projection too.
    """

    @staticmethod
    def forward(
        x, weight, bias, op, rule, send_error: bool, mode, names: tuple[str, ...], fmask, *fb
    ):
        dtype = _autocast_dtype(x)
        if dtype is None:  # no autocast context to leave: saves ~10% of the Function's overhead
            return op.forward(x, weight, bias)
        x, w, b = x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            return op.forward(x, w, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, op, rule, send_error, mode, names, fmask, *fb = inputs
        dtype = _autocast_dtype(x)
        if dtype is not None:  # save x as forward used it (as autocast would); usually a no-op,
            x = _as(x, dtype)  # since under autocast the previous area's output is already cast
        ctx.has_mask = fmask is not None
        ctx.save_for_backward(x, weight, *fb, *([fmask] if fmask is not None else []))
        ctx.op, ctx.rule, ctx.names, ctx.send_error, ctx.mode = op, rule, names, send_error, mode
        ctx.has_bias = bias is not None

    @staticmethod
    def vmap(info, in_dims, x, weight, bias, op, rule, send_error, mode, names, fmask, *fb):
        """Every tensor with its seed dimension first, then ONE application with the op's
        seed-batched form and the rule vmapped per seed (:class:`PerSeed`)."""
        k = info.batch_size

        def front(t, dim):
            if not isinstance(t, Tensor):
                return t
            return t.movedim(dim, 0) if dim is not None else t.unsqueeze(0).expand(k, *t.shape)

        x, weight, bias = front(x, in_dims[0]), front(weight, in_dims[1]), front(bias, in_dims[2])
        fmask = front(fmask, in_dims[_FEEDBACK - 1])
        fb = [front(t, d) for t, d in zip(fb, in_dims[_FEEDBACK:])]
        y = ProjectionFunction.apply(
            x, weight, bias, op.seed_batched(), PerSeed(rule, op), send_error, mode, names, fmask,
            *fb,
        )  # fmt: skip
        return y, 0

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, *fb_list = ctx.saved_tensors
        fmask = fb_list.pop() if ctx.has_mask else None
        fb = dict(zip(ctx.names, fb_list))
        dtype = grad_out.dtype
        exact = ctx.mode.exact
        need_x = ctx.needs_input_grad[0] and (ctx.send_error or exact)
        need_w = ctx.needs_input_grad[1]
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        learned = [
            n for n, need in zip(ctx.names, ctx.needs_input_grad[_FEEDBACK:]) if need and not exact
        ]
        gx = None
        if need_x and not exact and fmask is None and isinstance(ctx.rule, CustomErrorPath):
            gx = ctx.rule.error_through(grad_out, weight, fb, ctx.op, tuple(x.shape))
        send = need_x and not exact and gx is None
        feedback = ctx.rule.effective_feedback(weight, fb) if send else weight
        if send and fmask is not None:
            feedback = feedback * _as(fmask, feedback.dtype)
        x = _as(x, dtype)
        gx_op, gw, gb = ctx.op.grads(
            grad_out, x, _as(feedback, dtype),
            (need_x and gx is None, need_w or bool(learned), need_b),
        )  # fmt: skip
        gx = gx_op if gx is None else _as(gx, dtype)
        fb_grads: dict[str, Tensor] = {}
        if learned:
            local = LocalSignals(x, grad_out, weight, gw, ctx.op)
            fb_grads = ctx.rule.feedback_grads(local, fb)
        return (
            gx,
            _as(gw, weight.dtype) if need_w else None,
            _as(gb, weight.dtype) if need_b else None,
            None,
            None,
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


def project(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    op: ProjectionOp,
    rule: Any,
    feedback: dict[str, Tensor],
    mode: GradientMode,
    send_error: bool = True,
    feedback_mask: Tensor | None = None,
) -> Tensor:
    """Apply ``op`` with ``rule``'s feedback (see :class:`ProjectionFunction`), masked by
    ``feedback_mask`` on the way back when given.

    Fast path: a projection whose rule is a :class:`~biofa.rules.NativeBackward` (backprop: the
    feedback is ``W``, no tensors) and that sends its error back is the plain op under native
    autograd -- the same numbers, with no Python in the backward pass (the custom Function costs
    ~0.3 ms of host time per projection and step, which is most of a small network's step on a
    GPU; ``docs/benchmarks.md``).
    """
    if send_error and not feedback and feedback_mask is None and isinstance(rule, NativeBackward):
        return op.forward(x, weight, bias)
    names = tuple(feedback)
    return ProjectionFunction.apply(
        x, weight, bias, op, rule, send_error, mode, names, feedback_mask, *feedback.values()
    )


class PerSeed(FeedbackRule, CustomErrorPath):
    """A rule's functions vmapped over the seed dimension (the rule itself sees one seed)."""

    name = ""  # not a registered rule: a view of one

    def __init__(self, rule: FeedbackRule, op: ProjectionOp) -> None:  # options checked by rule
        self.inner, self.op, self.options = rule, op, rule.options

    def effective_feedback(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        inner = self.inner
        return vmap(lambda w, f: inner.effective_feedback(w, f))(weight, fb)

    def feedback_grads(self, local: LocalSignals, fb: dict[str, Tensor]) -> dict[str, Tensor]:
        inner, op = self.inner, self.op

        def one(x, g, w, gw, f):
            return inner.feedback_grads(LocalSignals(x, g, w, gw, op), f)

        dims = (0, 0, 0, None if local.weight_grad is None else 0, 0)
        return vmap(one, in_dims=dims)(
            local.input, local.grad_output, local.weight, local.weight_grad, fb
        )

    def error_through(self, grad_output, weight, fb, op, input_shape):
        inner = self.inner
        if not isinstance(inner, CustomErrorPath):
            return None
        declined: list[bool] = []

        def one(g, w, f):
            r = inner.error_through(g, w, f, self.op, tuple(input_shape[1:]))
            if r is None:
                declined.append(True)
                return g.new_zeros(())
            return r

        out = vmap(one)(grad_output, weight, fb)
        return None if declined else out


class ErrorBus:
    """Holds the readout's error during one backward pass (for :class:`DeliverAreaError`)."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: Tensor | None = None


class CaptureError(torch.autograd.Function):
    """Identity forward; stores the incoming error (dL/dlogits) in ``bus`` on the way back."""

    @staticmethod
    def forward(ctx, logits, bus: ErrorBus):
        ctx.bus = bus
        return logits.view_as(logits)

    @staticmethod
    def backward(ctx, grad):
        ctx.bus.error = grad
        return grad, None


class DeliverAreaError(torch.autograd.Function):
    """Identity forward; on the way back the area receives ``hook.deliver(e, fb)`` instead."""

    @staticmethod
    def forward(ctx, h, bus: ErrorBus, hook: DeliverError, mode, names: tuple[str, ...], *fb):
        ctx.bus, ctx.hook, ctx.names, ctx.mode = bus, hook, names, mode
        ctx.area_shape = tuple(h.shape[1:])
        ctx.save_for_backward(*fb)
        return h.view_as(h)

    @staticmethod
    def backward(ctx, grad):
        if ctx.mode.exact:
            return (grad, None, None, None, None, *[None] * len(ctx.names))
        error = ctx.bus.error
        if error is None:
            raise RuntimeError(
                "area hook: the readout error was not captured before this area's backward "
                "(is the area downstream of the readout?)"
            )
        fb = dict(zip(ctx.names, ctx.saved_tensors))
        delivered = ctx.hook.deliver(error, fb, ctx.area_shape)
        learned = ctx.hook.feedback_grads(error, fb) if any(ctx.needs_input_grad[5:]) else {}
        dtype = grad.dtype if grad is not None else delivered.dtype
        return (
            delivered.to(dtype),
            None,
            None,
            None,
            None,
            *[_cast(learned.get(n), t) for n, t in fb.items()],
        )


class CrossNonlinearity(torch.autograd.Function):
    """``activation(pre)`` forward; on the way back ``hook.cross(pre, grad, activation)``.

    In exact mode the derivative (autograd through ``activation``) is used instead.
    """

    @staticmethod
    def forward(ctx, pre, activation, hook: CrossingHook, mode):
        ctx.activation, ctx.hook, ctx.mode = activation, hook, mode
        ctx.save_for_backward(pre)
        return pre.clone() if activation is None else activation(pre)

    @staticmethod
    def backward(ctx, grad):
        (pre,) = ctx.saved_tensors
        crossed = None
        if not ctx.mode.exact:
            crossed = ctx.hook.cross(pre, grad, ctx.activation)
        if crossed is None and ctx.activation is not None:
            with torch.enable_grad():
                p = pre.detach().requires_grad_(True)
                (crossed,) = torch.autograd.grad(ctx.activation(p), p, grad)
        return (grad if crossed is None else crossed.to(grad.dtype)), None, None, None
