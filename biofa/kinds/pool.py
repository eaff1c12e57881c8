r"""``pool(mode, kernel, stride, padding)``: an unweighted projection that pools its source.

The target's summed input gets the source's activity max- or average-pooled over
``kernel x kernel`` windows moved by ``stride`` (default: ``kernel``) over the source zero-padded
by ``padding`` (``-inf``-padded for ``"max"``, as ``torch.nn.MaxPool2d``); ``kernel=0`` pools the
whole grid to ``1 x 1`` (``torch.nn.AdaptiveAvgPool2d(1)`` / ``AdaptiveMaxPool2d(1)``). An area's
own ``pool=`` pools with stride equal to the window and no padding after its nonlinearity; this
kind covers the rest, e.g. the ``3 x 3`` stride-2 max pooling of an ImageNet ResNet's stem, which
:func:`biofa.nn.tracing.from_module` maps onto it. No weight, no feedback pathway: the error goes
back through the pooling by autograd (to the maxima, or spread over the window).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from biofa.kinds._grid import GridTransformKind

__all__ = ["Pool", "Pooling", "pool"]

MODES = ("max", "avg")


@dataclass(frozen=True)
class Pooling:
    """``max_pool2d`` / ``avg_pool2d`` with the kind's window (``kernel=0``: global)."""

    mode: str
    kernel: int
    stride: int
    padding: int

    def __call__(self, x: Tensor) -> Tensor:
        if self.kernel == 0:
            dims = (2, 3)
            return x.amax(dims, keepdim=True) if self.mode == "max" else x.mean(dims, keepdim=True)
        if self.mode == "max":
            return F.max_pool2d(x, self.kernel, self.stride, self.padding)
        return F.avg_pool2d(x, self.kernel, self.stride, self.padding)


@dataclass(frozen=True)
class Pool(GridTransformKind):
    """Max or average pooling as a projection (module docstring)."""

    mode: str = "max"
    kernel: int = 2
    stride: int | None = None
    padding: int = 0
    op: ClassVar[str] = "pool"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"pool(mode={self.mode!r}): not one of {', '.join(MODES)}")
        for name, value, low in (("kernel", self.kernel, 0), ("padding", self.padding, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"pool({name}={value!r}): must be an int >= {low}")
        s = self.stride
        if s is not None and (isinstance(s, bool) or not isinstance(s, int) or s <= 0):
            raise ValueError(f"pool(stride={s!r}): must be a positive int or None")
        if self.kernel and 2 * self.padding > self.kernel:
            raise ValueError(
                f"pool(kernel={self.kernel}, padding={self.padding}): padding must be at most "
                "half the kernel"
            )

    @property
    def step(self) -> int:
        return self.stride if self.stride is not None else max(self.kernel, 1)

    def signature(self) -> tuple:
        return ("pool", self.mode, self.kernel, self.step, self.padding)

    def output_shape(self, projection, source_shape, channels) -> tuple[int, ...]:
        c, h, w = source_shape
        if channels != c:
            raise ValueError(
                f"pool projection {projection!r}: its source has {c} channels, the target "
                f"{channels}"
            )
        if self.kernel == 0:
            return (c, 1, 1)
        size = [(n + 2 * self.padding - self.kernel) // self.step + 1 for n in (h, w)]
        if min(size) <= 0:
            raise ValueError(f"pool projection {projection!r} shrinks {h}x{w} to nothing")
        return (c, *size)

    def build_transform(self, source_shape, output_shape) -> Pooling:
        return Pooling(self.mode, self.kernel, self.step, self.padding)


def pool(mode: str = "max", kernel: int = 2, stride: int | None = None, padding: int = 0) -> Pool:
    """A pooling projection (see :class:`Pool`); ``kernel=0`` pools the whole grid."""
    return Pool(mode, kernel, stride, padding)
