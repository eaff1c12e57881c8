"""``identity()``: an unweighted projection adding the source's activity to the target's input.

Source and target must have the same shape (ResNet skip connections). It has no weight, so no op
and no feedback pathway: the error passes through it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from biofa.circuit.kind import ProjectionKind

__all__ = ["Identity", "identity"]


@dataclass(frozen=True)
class Identity(ProjectionKind):
    """A skip connection: the source's activity is added to the target's summed input."""

    op: ClassVar[str] = "identity"
    batch_norm: ClassVar[bool] = False

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


def identity() -> Identity:
    """A skip connection (see :class:`Identity`)."""
    return Identity()
