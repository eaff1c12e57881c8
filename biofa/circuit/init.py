"""How a projection's weights start: descriptors, drawn by :mod:`biofa.nn.init` (no torch here).

``c.connect(src, dst, dense(), init=exponential(0.05))``. Every descriptor gives *magnitudes*; the
weight then takes its source populations' signs (Dale's law: ``W = s |V|``):

==========================  ====================================================================
``he_normal(gain=None)``    ``N(0, gain^2 / n)`` with ``n`` the inputs per unit (``p`` times the
                            fan-in for a sparse projection); ``gain`` ``sqrt(2)`` into a ReLU
                            population, 1 otherwise; E and I columns balanced. The default.
``exponential(scale)``      ``Exponential`` with mean (and standard deviation) ``scale``: Cornford
                            et al.'s DANN initialisation.
``constant(value)``         every magnitude ``value`` (DANN: ``W_EI = 1 / n_I``).
``row_mean(of)``            every row the mean row of the (earlier declared) projection ``of``
                            from the same source (DANN's single output interneuron:
                            ``W_IE = mean_j W_EE[j]``, so it subtracts the mean drive).
==========================  ====================================================================

Masked synapses (``p < 1`` or a mask) are zero whatever the descriptor.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Constant", "Exponential", "HeNormal", "Init", "RowMean", "constant", "exponential",
           "he_normal", "row_mean"]  # fmt: skip


class Init:
    """A weight initialisation (the descriptors below)."""


def _positive(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{what}={value!r} must be a positive number")


@dataclass(frozen=True)
class HeNormal(Init):
    gain: float | None = None

    def __post_init__(self) -> None:
        if self.gain is not None:
            _positive("he_normal(gain)", self.gain)


@dataclass(frozen=True)
class Exponential(Init):
    scale: float

    def __post_init__(self) -> None:
        _positive("exponential(scale)", self.scale)


@dataclass(frozen=True)
class Constant(Init):
    value: float

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise ValueError(f"constant(value)={self.value!r} must be a number")


@dataclass(frozen=True)
class RowMean(Init):
    of: str


def he_normal(gain: float | None = None) -> HeNormal:
    """He-normal magnitudes (the default; module docstring)."""
    return HeNormal(gain)


def exponential(scale: float) -> Exponential:
    """Exponential magnitudes of mean ``scale`` (module docstring)."""
    return Exponential(scale)


def constant(value: float) -> Constant:
    """Every magnitude ``value`` (module docstring)."""
    return Constant(value)


def row_mean(of: str) -> RowMean:
    """Every row the mean row of projection ``of`` (module docstring)."""
    return RowMean(of)
