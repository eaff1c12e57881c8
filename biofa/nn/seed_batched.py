r"""Seed-batched execution: ``K`` copies of one compiled circuit run as one computation.

:func:`stack` stacks the copies' parameters and buffers along a new leading (seed) dimension and
makes each copy's own tensors views into the stacks. Under ``torch.func.vmap`` over that
dimension, :class:`biofa.nn.ops.ProjectionFunction` calls :func:`batched_projection` (its vmap
rule), which runs ONE seed-batched op per projection -- a batched matrix product
(:class:`SeedBatchedLinear`) or a grouped convolution with ``groups=K``
(:class:`SeedBatchedConv`) -- with the feedback rule's own functions vmapped per seed
(:class:`PerSeed`). Seed ``k``'s numbers are those of its own unbatched circuit up to float
rounding. Used by :func:`biofa.train.multiseed.fit_seeds`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import vmap

from biofa.nn.compiler import CompiledCircuit
from biofa.nn.ops import Conv2dOp, LinearOp, ProjectionFunction
from biofa.rules._base import FeedbackRule, LocalSignals

__all__ = [
    "PerSeed",
    "SeedBatchedConv",
    "SeedBatchedLinear",
    "StackedParameters",
    "batched_projection",
    "stack",
]

class SeedBatchedLinear:
    """``K`` dense projections at once: ``x (K, N, in)``, ``W (K, out, in)``; batched products."""

    kind = "linear"

    def __init__(self, op: LinearOp):
        self.inner = op

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    def grads(self, grad_out, x, feedback, mask):
        gx = torch.bmm(grad_out, feedback) if mask[0] else None
        gw = torch.bmm(grad_out.transpose(1, 2), x) if mask[1] else None
        gb = grad_out.sum(1) if mask[2] else None
        return gx, gw, gb


class SeedBatchedConv:
    """``K`` conv projections at once as ONE grouped convolution (``groups=K``).

    ``x (K, N, C, H, W)`` is laid out as ``(N, K*C, H, W)`` and the kernels ``(K, out, C, k, k)``
    as ``(K*out, C, k, k)``; the output comes back as a ``(K, N, out, H', W')`` view of the
    ``(N, K*out, H', W')`` result, so the next projection's layout change is free.
    """

    kind = "conv2d"

    def __init__(self, op: Conv2dOp):
        self.inner = op

    @staticmethod
    def _x(x: Tensor) -> Tensor:
        return x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        k, n = x.shape[:2]
        y = F.conv2d(self._x(x), weight.flatten(0, 1), None if bias is None else bias.flatten(),
                     self.inner.stride, self.inner.padding, 1, k)
        return y.view(n, k, -1, *y.shape[2:]).transpose(0, 1)

    def grads(self, grad_out, x, feedback, mask):
        k, n = x.shape[:2]
        out = feedback.shape[1]
        gx, gw, gb = torch.ops.aten.convolution_backward(
            self._x(grad_out), self._x(x), feedback.flatten(0, 1),
            [k * out] if mask[2] else None, [self.inner.stride] * 2, [self.inner.padding] * 2,
            [1, 1], False, [0, 0], k, list(mask))
        if gx is not None:
            gx = gx.view(n, k, -1, *gx.shape[2:]).transpose(0, 1)
        if gw is not None:
            gw = gw.view(k, out, *gw.shape[1:])
        if gb is not None:
            gb = gb.view(k, out)
        return gx, gw, gb


class PerSeed(FeedbackRule):
    """A rule's functions vmapped over the seed dimension (the rule itself sees one seed)."""

    name = "per_seed"

    def __init__(self, rule: FeedbackRule, op) -> None:  # options were checked by ``rule``
        self.inner, self.op, self.options = rule, op, rule.options

    def effective_feedback(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        inner = self.inner
        return vmap(lambda w, f: inner.effective_feedback(w, f))(weight, fb)

    def feedback_grads(self, local: LocalSignals, fb: dict[str, Tensor]) -> dict[str, Tensor]:
        inner, op = self.inner, self.op
        if type(inner).feedback_grads is FeedbackRule.feedback_grads:
            return {}

        def one(x, g, w, gw, f):
            return inner.feedback_grads(LocalSignals(x, g, w, gw, op), f)

        dims = (0, 0, 0, None if local.weight_grad is None else 0, 0)
        return vmap(one, in_dims=dims)(local.input, local.grad_output, local.weight,
                                       local.weight_grad, fb)

    def error_through(self, grad_output, weight, fb, op, input_shape):
        inner = self.inner
        hook = getattr(FeedbackRule, "error_through", None)
        if hook is None or getattr(type(inner), "error_through", hook) is hook:
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


def batched_projection(info, in_dims, x, weight, bias, op, rule, send_error, names, *fb):
    """The ``vmap`` rule of :class:`biofa.nn.ops.ProjectionFunction`: every tensor with its seed
    dimension first, then ONE application with a seed-batched op and the rule vmapped per seed."""
    k = info.batch_size

    def front(t, dim):
        if not isinstance(t, Tensor):
            return t
        return t.movedim(dim, 0) if dim is not None else t.unsqueeze(0).expand(k, *t.shape)

    x, weight, bias = front(x, in_dims[0]), front(weight, in_dims[1]), front(bias, in_dims[2])
    fb = [front(t, d) for t, d in zip(fb, in_dims[7:])]
    if isinstance(op, LinearOp):
        batched = SeedBatchedLinear(op)
    elif isinstance(op, Conv2dOp):
        batched = SeedBatchedConv(op)
    else:
        raise TypeError(f"biofa.nn.seed_batched: no seed-batched form of op {op!r}")
    y = ProjectionFunction.apply(x, weight, bias, batched, PerSeed(rule, op), send_error, names,
                                 *fb)
    return y, 0


def stack(models: list[CompiledCircuit]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Stacked parameters (leaves) and buffers of ``models``; each model's own tensors become views
    into them, so the per-seed modules always show the current values."""
    params: dict[str, Tensor] = {}
    for name, p in models[0].named_parameters():
        stacked = torch.stack([dict(m.named_parameters())[name].detach() for m in models])
        params[name] = stacked.requires_grad_(p.requires_grad)
    buffers: dict[str, Tensor] = {}
    for name, _ in models[0].named_buffers():
        buffers[name] = torch.stack([dict(m.named_buffers())[name] for m in models])
    for k, m in enumerate(models):
        for name, p in m.named_parameters():
            p.data = params[name].detach()[k]
        for name, _ in m.named_buffers():
            module_name, _, attr = name.rpartition(".")
            owner = m.get_submodule(module_name) if module_name else m
            owner._buffers[attr] = buffers[name][k]
    return params, buffers


class StackedParameters:
    """What :func:`biofa.train.build_optimizers` reads, pointing at the stacked tensors."""

    def __init__(self, model: CompiledCircuit, params: dict[str, Tensor]):
        names = {id(p): n for n, p in model.named_parameters()}
        self._forward = [params[names[id(p)]] for p in model.forward_parameters()]
        self._feedback = [params[names[id(p)]] for p in model.feedback_parameters()]

    def forward_parameters(self) -> list[Tensor]:
        return self._forward

    def feedback_parameters(self) -> list[Tensor]:
        return self._feedback
