"""``dense()``: a fully connected projection (``y = x W^T + b``).

``W`` is ``(out, in)``. ``dense(flatten=True)`` reads a spatial source ``(C, H, W)`` as a vector of
``C * H * W`` entries, channel-major (as ``Tensor.flatten`` lays it out), so each source channel
occupies ``H * W`` columns of ``W`` and keeps its population's sign on all of them.

Seed-batched form: one batched matrix product (``torch.bmm`` / ``baddbmm``) for ``K`` seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from biofa.circuit.connectivity import check_connectivity
from biofa.circuit.kind import WeightedKind
from biofa.kinds._base import ProjectionOp

__all__ = ["Dense", "DenseOp", "SeedBatchedDense", "dense"]


@dataclass(frozen=True)
class Dense(WeightedKind):
    """A dense (fully connected) projection. ``flatten=True`` reads a spatial source as a vector;
    ``p`` (connection probability) or ``mask`` make it sparse
    (:mod:`biofa.circuit.connectivity`)."""

    flatten: bool = False
    batch_norm: bool = False
    p: float = 1.0
    mask: Any = field(default=None, compare=False, repr=False)

    op: ClassVar[str] = "linear"

    def __post_init__(self) -> None:
        check_connectivity(f"dense(p={self.p!r})", self.p, self.mask)

    @property
    def op_type(self) -> type:
        return DenseOp

    def signature(self) -> tuple:
        return ("linear",)

    def check_source(self, projection: str, source: str, spatial: bool) -> None:
        if spatial and not self.flatten:
            raise ValueError(
                f"dense projection {projection!r} reads spatial area {source!r}: use "
                f"dense(flatten=True) or pool='global_avg' on {source!r}"
            )

    def spatial_output(self, source_spatial: bool) -> bool:
        return False

    def output_shape(self, projection, source_shape, channels) -> tuple[int, ...]:
        return (channels,)

    def columns_per_channel(self, source_shape) -> int:
        return math.prod(source_shape[1:]) if self.flatten else 1

    def weight_shape(self, out_channels, in_columns, output_shape) -> tuple[int, ...]:
        return (out_channels, in_columns)

    def fan_in(self, weight_shape) -> int:
        return weight_shape[1]

    def build_op(self, source_shapes, output_shape) -> DenseOp:
        return DenseOp(self.flatten)


@dataclass(frozen=True)
class DenseOp(ProjectionOp):
    """``y = x W^T + b`` for ``x`` of shape ``(N, in)``, ``W`` of shape ``(out, in)``."""

    flatten: bool = False
    kind = "linear"

    def prepare(self, inputs: list[Tensor]) -> Tensor:
        if self.flatten:
            inputs = [x.flatten(1) for x in inputs]
        return inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, weight, bias)

    def input_grad(self, grad_out: Tensor, feedback: Tensor, input_shape) -> Tensor:
        return grad_out @ feedback

    def weight_grad(self, x: Tensor, grad_out: Tensor, weight_shape) -> Tensor:
        return grad_out.t() @ x

    def bias_grad(self, grad_out: Tensor) -> Tensor:
        return grad_out.sum(0)

    def seed_batched(self) -> SeedBatchedDense:
        return SeedBatchedDense()


class SeedBatchedDense(ProjectionOp):
    """``K`` dense projections at once: ``x (K, N, in)``, ``W (K, out, in)``; batched products."""

    kind = "linear"

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    def input_grad(self, grad_out: Tensor, feedback: Tensor, input_shape) -> Tensor:
        return torch.bmm(grad_out, feedback)

    def weight_grad(self, x: Tensor, grad_out: Tensor, weight_shape) -> Tensor:
        return torch.bmm(grad_out.transpose(1, 2), x)

    def bias_grad(self, grad_out: Tensor) -> Tensor:
        return grad_out.sum(1)

    def seed_batched(self) -> ProjectionOp:
        raise TypeError("an op over seeds has no further seed-batched form")


def dense(
    *, flatten: bool = False, batch_norm: bool = False, p: float = 1.0, mask: Any = None
) -> Dense:
    """A dense projection (see :class:`Dense`)."""
    return Dense(flatten, batch_norm, p, mask)
