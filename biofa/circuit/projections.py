"""Projection kinds: how one area drives another (``conv``, ``dense``, ``identity``).

These are declarations only; :mod:`biofa.nn.compiler` turns them into batched tensor ops. A
projection
kind is part of the *op signature* that decides which projections into one area are concatenated
into a single conv/linear call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Conv:
    """A 2-D convolution ``kernel x kernel`` with ``stride`` and zero ``padding``.

    ``padding=None`` means "same" padding for odd kernels (``kernel // 2``). ``batch_norm=True``
    normalises this projection's output on its own before it is summed with the area's other
    inputs (the ResNet block layout); otherwise normalisation is the area's.
    """

    kernel: int
    stride: int = 1
    padding: int | None = None
    batch_norm: bool = False

    op = "conv2d"

    def __post_init__(self) -> None:
        for name in ("kernel", "stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"conv({name}={value!r}): must be a positive int")
        if self.padding is not None and (not isinstance(self.padding, int) or self.padding < 0):
            raise ValueError(f"conv(padding={self.padding!r}): must be a non-negative int or None")

    @property
    def pad(self) -> int:
        return self.kernel // 2 if self.padding is None else self.padding

    def out_size(self, size: int) -> int:
        return (size + 2 * self.pad - self.kernel) // self.stride + 1

    def signature(self) -> tuple:
        return ("conv2d", self.kernel, self.stride, self.pad)


@dataclass(frozen=True)
class Dense:
    """A dense (fully connected) projection. ``flatten=True`` reads a spatial source as a vector."""

    flatten: bool = False
    batch_norm: bool = False

    op = "linear"

    def signature(self) -> tuple:
        return ("linear",)


@dataclass(frozen=True)
class Identity:
    """An unweighted projection that adds the source's activity to the target's input.

    Source and target must have the same shape (ResNet skip connections). It has no weights, so no
    feedback pathway: the error passes through it unchanged.
    """

    op = "identity"
    batch_norm = False

    def signature(self) -> tuple:
        return ("identity",)


def conv(
    kernel: int, stride: int = 1, padding: int | None = None, *, batch_norm: bool = False
) -> Conv:
    """A convolutional projection (see :class:`Conv`)."""
    return Conv(kernel, stride, padding, batch_norm)


def dense(*, flatten: bool = False, batch_norm: bool = False) -> Dense:
    """A dense projection (see :class:`Dense`)."""
    return Dense(flatten, batch_norm)


def identity() -> Identity:
    """A skip connection (see :class:`Identity`)."""
    return Identity()


ProjectionKind = Conv | Dense | Identity
