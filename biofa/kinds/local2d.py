r"""``local2d(k, stride, padding)``: a locally connected 2-D projection (unshared weights).

Like a convolution, each output unit at position ``l = (i, j)`` reads a ``k x k`` window of every
source channel, but every position has its own weights: ``W`` is ``(out, in, k, k, H', W')`` and

.. math::
    y_{n,o,l} = \sum_{c,u} W_{o,c,u,l}\, X_{n,c,u,l} + b_o, \qquad
    (\delta_{in})_{n,c,u,l} = \sum_o (\delta_{out})_{n,o,l}\, B_{o,c,u,l}, \qquad
    \nabla W_{o,c,u,l} = \sum_n (\delta_{out})_{n,o,l}\, X_{n,c,u,l},

with ``X = unfold(x)`` the ``k x k`` windows (``u`` indexes a window's entries) and the input error
folded back onto the image (overlapping windows add up). Weight sharing is itself a form of
weight transport between positions; Bartunov et al. (2018) used locally connected layers to test
feedback alignment and target propagation without it. Every rule that works on a convolution
works here: dimension 0 of ``W`` is the output channel and dimension 1 the input channel, as
rules and Dale's law expect; the fan-in is ``in * k * k``.

Bartunov, S., Santoro, A., Richards, B. A., Marris, L., Hinton, G. E. & Lillicrap, T. (2018),
*Assessing the scalability of biologically-motivated deep learning algorithms and
architectures*, NeurIPS 31.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from biofa.kinds._base import ProjectionOp
from biofa.kinds._window import WindowKind

__all__ = ["Local2d", "Local2dOp", "local2d"]


@dataclass(frozen=True)
class Local2d(WindowKind):
    """A locally connected ``kernel x kernel`` projection with ``stride`` and zero ``padding``,
    one weight per position: ``W`` is ``(out, in, k, k, H', W')`` (window fields:
    :class:`WindowKind`)."""

    op: ClassVar[str] = "local2d"

    @property
    def op_type(self) -> type:
        return Local2dOp

    def weight_shape(self, out_channels, in_columns, output_shape) -> tuple[int, ...]:
        k = self.kernel
        return (out_channels, in_columns, k, k, output_shape[1], output_shape[2])

    def build_op(self, source_shapes, output_shape) -> Local2dOp:
        return Local2dOp(self.kernel, self.stride, self.pad, tuple(source_shapes[0][1:]))


@dataclass(frozen=True)
class Local2dOp(ProjectionOp):
    """The products of :class:`Local2d` by ``unfold``/``fold`` and ``einsum`` (module docstring).

    ``image`` is the source's ``(H, W)``.
    """

    kernel: int
    stride: int
    padding: int
    image: tuple[int, int]
    kind = "local2d"

    def _unfold(self, x: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, C, k*k, L)``."""
        cols = F.unfold(x, self.kernel, padding=self.padding, stride=self.stride)
        return cols.view(x.shape[0], x.shape[1], self.kernel * self.kernel, -1)

    @staticmethod
    def _flat(weight: Tensor) -> Tensor:
        """``(out, in, k, k, H', W') -> (out, in, k*k, L)``."""
        o, c, kh, kw = weight.shape[:4]
        return weight.reshape(o, c, kh * kw, -1)

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        y = torch.einsum("nckl,ockl->nol", self._unfold(x), self._flat(weight))
        y = y.view(x.shape[0], weight.shape[0], *weight.shape[4:])
        return y if bias is None else y + bias.view(1, -1, 1, 1)

    def input_grad(self, grad_out: Tensor, feedback: Tensor, input_shape) -> Tensor:
        n, c = input_shape[0], input_shape[1]
        g = grad_out.reshape(grad_out.shape[0], grad_out.shape[1], -1)
        cols = torch.einsum("nol,ockl->nckl", g, self._flat(feedback))
        return F.fold(
            cols.reshape(n, c * self.kernel * self.kernel, -1), tuple(input_shape[2:]),
            self.kernel, padding=self.padding, stride=self.stride,
        )  # fmt: skip

    def weight_grad(self, x: Tensor, grad_out: Tensor, weight_shape) -> Tensor:
        g = grad_out.reshape(grad_out.shape[0], grad_out.shape[1], -1)
        return torch.einsum("nol,nckl->ockl", g, self._unfold(x)).reshape(weight_shape)


def local2d(kernel: int, stride: int = 1, padding: int | None = None, **options: Any) -> Local2d:
    """A locally connected projection (see :class:`Local2d`); ``options``: ``batch_norm``, ``p``,
    ``mask`` (keywords, as for :func:`~biofa.kinds.conv2d.conv`)."""
    return Local2d(kernel, stride, padding, **options)
