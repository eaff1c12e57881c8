"""Populations: groups of neurons whose outgoing synapses share a sign (Dale's law).

An area's activity is the channel concatenation of its populations. The sign of a weight belongs to
its *presynaptic* population: every outgoing weight of an excitatory population is >= 0, of an
inhibitory one <= 0; ``Units`` are unconstrained (for circuits that reproduce papers without
Dale's law).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Population:
    """``size`` neurons (channels of a conv area, units of a dense one) with outgoing sign ``sign``.

    ``sign`` is +1 (excitatory), -1 (inhibitory) or 0 (unconstrained).
    """

    size: int
    sign: int
    kind: str

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size <= 0:
            raise ValueError(f"{self.kind}({self.size!r}): a population needs a positive int size")

    def __repr__(self) -> str:
        return f"{self.kind}({self.size})"


def E(n: int) -> Population:
    """An excitatory population of ``n`` neurons: all its outgoing weights are >= 0."""
    return Population(n, +1, "E")


def I(n: int) -> Population:  # noqa: E743 - the neuroscience name
    """An inhibitory population of ``n`` neurons: all its outgoing weights are <= 0."""
    return Population(n, -1, "I")


def Units(n: int) -> Population:
    """``n`` unconstrained units: outgoing weights of either sign (no Dale's law)."""
    return Population(n, 0, "Units")
