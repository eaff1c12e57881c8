"""What the unweighted kinds that transform a spatial source share (shortcuts, pooling)."""

from __future__ import annotations

from biofa.circuit.kind import UnweightedKind

__all__ = ["GridTransformKind"]


class GridTransformKind(UnweightedKind):
    """An unweighted kind reading a spatial ``(C, H, W)`` source into a spatial target
    (abstract; subclasses give the signature, the output shape and the transform)."""

    def check_source(self, projection: str, source: str, spatial: bool) -> None:
        if not spatial:
            raise ValueError(
                f"{self.op} projection {projection!r} reads area {source!r}, which is a vector; "
                f"{self.op} needs a spatial (conv) area"
            )

    def spatial_output(self, source_spatial: bool) -> bool:
        return True
