r"""``shortcut(stride)``: He et al.'s "option A" residual shortcut, unweighted.

Where a ResNet stage halves the grid and widens the channels, option A keeps the shortcut free of
parameters: the source is subsampled by ``stride`` (every ``stride``-th row and column, starting
at 0) and its ``C`` channels are zero-padded to the target's ``C'``, ``(C' - C) // 2`` zero
channels before them and the rest after:

.. math:: T(h)_{n,\,c + p,\,i,\,j} = h_{n,\,c,\,s i,\,s j}, \qquad p = \lfloor (C' - C)/2 \rfloor,

and zero elsewhere. For ``C' = 2C`` this is exactly BioTorch's and the PFA code's
``IdentityPadding`` (``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, C'/4, C'/4))``), which both use for
their CIFAR ResNets (He et al. 2016, Sec. 4.2). No weight, no feedback pathway: on the way back
the error at the kept positions and channels goes to the source, the rest of the source gets
none (autograd of the slice and the pad).

He, K., Zhang, X., Ren, S. & Sun, J. (2016), *Deep residual learning for image recognition*,
CVPR (arXiv:1512.03385).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from biofa.kinds._grid import GridTransformKind

__all__ = ["Shortcut", "SubsamplePad", "shortcut"]


@dataclass(frozen=True)
class SubsamplePad:
    """``x[:, :, ::stride, ::stride]`` with ``before`` / ``after`` zero channels."""

    stride: int
    before: int
    after: int

    def __call__(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after))


@dataclass(frozen=True)
class Shortcut(GridTransformKind):
    """Option-A shortcut: subsample by ``stride``, zero-pad the channels (module docstring)."""

    stride: int = 2
    op: ClassVar[str] = "shortcut"

    def __post_init__(self) -> None:
        s = self.stride
        if isinstance(s, bool) or not isinstance(s, int) or s <= 0:
            raise ValueError(f"shortcut(stride={s!r}): must be a positive int")

    def signature(self) -> tuple:
        return ("shortcut", self.stride)

    def output_shape(self, projection, source_shape, channels) -> tuple[int, ...]:
        c, h, w = source_shape
        if channels < c:
            raise ValueError(
                f"shortcut projection {projection!r}: its source has {c} channels, more than "
                f"the target's {channels} (option A only pads channels)"
            )
        s = self.stride
        return (channels, -(-h // s), -(-w // s))

    def build_transform(self, source_shape, output_shape) -> SubsamplePad:
        extra = output_shape[0] - source_shape[0]
        return SubsamplePad(self.stride, extra // 2, extra - extra // 2)


def shortcut(stride: int = 2) -> Shortcut:
    """An option-A ResNet shortcut (see :class:`Shortcut`)."""
    return Shortcut(stride)
