"""``identity()``: an unweighted projection adding the source's activity to the target's input.

Source and target must have the same shape (ResNet skip connections). It has no weight, so no op
and no feedback pathway: the error passes through it unchanged. Its transform returns its input
itself, so the compiler's sum is exactly ``pre + h_source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from biofa.circuit.kind import UnweightedKind

__all__ = ["Identity", "identity"]


def same(x: Tensor) -> Tensor:
    """The identity transform: ``x`` itself (no copy, no arithmetic)."""
    return x


@dataclass(frozen=True)
class Identity(UnweightedKind):
    """A skip connection: the source's activity is added to the target's summed input."""

    op: ClassVar[str] = "identity"

    def signature(self) -> tuple:
        return ("identity",)

    def check_source(self, projection: str, source: str, spatial: bool) -> None:
        return None

    def spatial_output(self, source_spatial: bool) -> bool:
        return source_spatial

    def output_shape(self, projection, source_shape, channels) -> tuple[int, ...]:
        if source_shape[0] != channels:
            raise ValueError(
                f"identity projection {projection!r}: its source has {source_shape[0]} channels, "
                f"the target {channels}"
            )
        return tuple(source_shape)

    def build_transform(self, source_shape, output_shape):
        return same


def identity() -> Identity:
    """A skip connection (see :class:`Identity`)."""
    return Identity()
