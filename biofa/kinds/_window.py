"""What every 2-D windowed kind shares: a ``kernel x kernel`` window moved by ``stride`` over a
zero-padded spatial source (``padding=None``: "same", ``kernel // 2``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from biofa.circuit.connectivity import check_connectivity
from biofa.circuit.kind import WeightedKind

__all__ = ["WindowKind"]


@dataclass(frozen=True)
class WindowKind(WeightedKind):
    """A weighted kind reading ``kernel x kernel`` windows of a spatial source (abstract).

    ``padding=None`` means "same" padding for odd kernels (``kernel // 2``); ``batch_norm=True``
    normalises the projection's output on its own before it is summed with the area's other
    inputs (the ResNet block layout); ``p`` (connection probability) or ``mask`` make it sparse
    (:mod:`biofa.circuit.connectivity`). Subclasses (frozen dataclasses) give an ``op`` name,
    the weight's shape and the op.
    """

    kernel: int
    stride: int = 1
    padding: int | None = None
    batch_norm: bool = False
    p: float = 1.0
    mask: Any = field(default=None, compare=False, repr=False)

    @property
    def declared_as(self) -> str:
        """The name a spec declares it with (``conv``, ``local2d``)."""
        return type(self).__name__.lower()

    def __post_init__(self) -> None:
        name = self.declared_as
        for key, value in (("kernel", self.kernel), ("stride", self.stride)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}({key}={value!r}): must be a positive int")
        p = self.padding
        if p is not None and (isinstance(p, bool) or not isinstance(p, int) or p < 0):
            raise ValueError(f"{name}(padding={p!r}): must be a non-negative int or None")
        check_connectivity(f"{name}(p={self.p!r})", self.p, self.mask)

    @property
    def pad(self) -> int:
        return self.kernel // 2 if self.padding is None else self.padding

    def out_size(self, size: int) -> int:
        return (size + 2 * self.pad - self.kernel) // self.stride + 1

    def signature(self) -> tuple:
        return (self.op, self.kernel, self.stride, self.pad)

    def check_source(self, projection: str, source: str, spatial: bool) -> None:
        if not spatial:
            name = self.declared_as
            raise ValueError(
                f"{name} projection {projection!r} reads area {source!r}, which is a vector "
                f"(dense, or globally pooled); {name} needs a spatial source"
            )

    def spatial_output(self, source_spatial: bool) -> bool:
        return True

    def output_shape(self, projection, source_shape, channels) -> tuple[int, ...]:
        h, w = self.out_size(source_shape[1]), self.out_size(source_shape[2])
        if h <= 0 or w <= 0:
            raise ValueError(
                f"{self.declared_as} projection {projection!r} shrinks "
                f"{source_shape[1]}x{source_shape[2]} to nothing"
            )
        return (channels, h, w)

    def fan_in(self, weight_shape) -> int:
        return weight_shape[1] * self.kernel * self.kernel
