"""How the architectures split an area's channels into populations."""

from __future__ import annotations

from biofa.circuit import E, I, Population, Units

#: the inhibitory fraction of an E/I area (cortex: about one neuron in four to five)
INHIBITORY = 0.25


def populations(channels: int, ei: bool) -> tuple[Population, ...]:
    """``Units(channels)``, or ``E`` and ``I`` populations with a quarter of the channels
    inhibitory (``channels // 4``, at least one)."""
    if not ei:
        return (Units(channels),)
    inh = max(1, int(channels * INHIBITORY))
    if inh >= channels:
        raise ValueError(f"an E/I area needs at least 2 channels, got {channels}")
    return (E(channels - inh), I(inh))


def scaled(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, rounded, at least 1."""
    if not width > 0:
        raise ValueError(f"width={width!r} must be a positive multiplier")
    return max(1, int(round(channels * width)))
