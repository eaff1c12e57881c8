"""``conv(k, stride, padding)``: a 2-D convolution (shared weights, no dilation, one group).

``W`` is ``(out, in, k, k)``. The backward is ONE ``aten.convolution_backward`` call with the
rule's feedback in the weight slot: the weight gradient does not depend on the weight's values, so
a feedback rule costs exactly backprop's arithmetic.

Seed-batched form: one grouped convolution (``groups=K``) for ``K`` seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from biofa.kinds._base import FusedOp, ProjectionOp
from biofa.kinds._window import WindowKind

__all__ = ["Conv", "Conv2dOp", "SeedBatchedConv", "conv"]


@dataclass(frozen=True)
class Conv(WindowKind):
    """A 2-D convolution ``kernel x kernel`` with ``stride`` and zero ``padding``, weights shared
    over positions: ``W`` is ``(out, in, k, k)`` (window fields: :class:`WindowKind`)."""

    op: ClassVar[str] = "conv2d"

    @property
    def op_type(self) -> type:
        return Conv2dOp

    def weight_shape(self, out_channels, in_columns, output_shape) -> tuple[int, ...]:
        return (out_channels, in_columns, self.kernel, self.kernel)

    def build_op(self, source_shapes, output_shape) -> Conv2dOp:
        return Conv2dOp(self.stride, self.pad)


@dataclass(frozen=True)
class Conv2dOp(FusedOp):
    """A 2-D convolution with ``stride`` and ``padding`` (no dilation, one group)."""

    stride: int
    padding: int
    kind = "conv2d"

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(x, weight, bias, self.stride, self.padding)

    def grads(self, grad_out, x, feedback, mask):
        bias_sizes = [feedback.shape[0]] if mask[2] else None
        return torch.ops.aten.convolution_backward(
            grad_out, x, feedback, bias_sizes, [self.stride] * 2, [self.padding] * 2, [1, 1],
            False, [0, 0], 1, list(mask),
        )  # fmt: skip

    def seed_batched(self) -> SeedBatchedConv:
        return SeedBatchedConv(self)


class SeedBatchedConv(FusedOp):
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
                     self.inner.stride, self.inner.padding, 1, k)  # fmt: skip
        return y.view(n, k, -1, *y.shape[2:]).transpose(0, 1)

    def grads(self, grad_out, x, feedback, mask):
        k, n = x.shape[:2]
        out = feedback.shape[1]
        gx, gw, gb = torch.ops.aten.convolution_backward(
            self._x(grad_out), self._x(x), feedback.flatten(0, 1),
            [k * out] if mask[2] else None, [self.inner.stride] * 2, [self.inner.padding] * 2,
            [1, 1], False, [0, 0], k, list(mask))  # fmt: skip
        if gx is not None:
            gx = gx.view(n, k, -1, *gx.shape[2:]).transpose(0, 1)
        if gw is not None:
            gw = gw.view(k, out, *gw.shape[1:])
        if gb is not None:
            gb = gb.view(k, out)
        return gx, gw, gb

    def seed_batched(self) -> ProjectionOp:
        raise TypeError("an op over seeds has no further seed-batched form")


def conv(
    kernel: int,
    stride: int = 1,
    padding: int | None = None,
    *,
    batch_norm: bool = False,
    p: float = 1.0,
    mask: Any = None,
) -> Conv:
    """A convolutional projection (see :class:`Conv`)."""
    return Conv(kernel, stride, padding, batch_norm, p, mask)
