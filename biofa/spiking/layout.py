"""What a spiking network is made of, before Brian2: populations, connections, the plan.

A :class:`Plan` holds everything the Brian2 network needs as numpy arrays in SI units, and nothing
of Brian2, so it can be checked without simulating; :func:`biofa.spiking.plan.build_plan` makes
one from a trained circuit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from biofa.spiking.calibrate import Calibration
from biofa.spiking.neurons import NeuronModel

__all__ = ["Connection", "Plan", "Population"]


@dataclass(frozen=True, eq=False)
class Population:
    """``size`` neurons of one kind with one outgoing sign (Dale's law for ``sign = +-1``).

    ``kind`` is ``"poisson"`` (rates set per image), ``"neuron"`` (the spiking model),
    ``"readout"`` (membrane integrator) or ``"current"`` (input injected as current: no neurons).
    ``role`` is ``"input"``, ``"hidden"``, ``"readout"`` or ``"error"``; ``sign`` is +1 (E),
    -1 (I) or 0 (unconstrained: Units, and error populations, whose weights are the rule's
    feedback tensors); ``bias`` the constant current (amp) per neuron; ``channels`` the
    population's channel range in its area; ``polarity`` +1/-1 for error populations;
    ``mirrors`` the forward population whose spikes open a ``gated`` population's synapses.
    """

    name: str
    area: str
    kind: str
    role: str
    size: int
    sign: int
    bias: np.ndarray
    channels: tuple[int, int]
    polarity: int = 0
    mirrors: str = ""
    gated: bool = False


@dataclass(frozen=True, eq=False)
class Connection:
    """Synapses from every neuron of ``source`` to every neuron of ``target`` (one copy).

    ``weight`` is ``(source.size, target.size)`` in the target model's weight unit (SI);
    ``pathway`` is ``"forward"`` or ``"feedback"``; ``via`` names the projection or pathway.
    """

    source: str
    target: str
    weight: np.ndarray
    pathway: str
    via: str

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"


@dataclass(eq=False)
class Plan:
    """A circuit ready for Brian2 (module docstring). Areas map to population names in order;
    ``calibration`` is keyed by area, by population (:meth:`calibration_of`) and by
    ``"<area>.err"`` (the error populations of an area)."""

    circuit: str
    neuron: NeuronModel
    readout_model: NeuronModel
    readout: str
    encoding: str
    input_area: str
    readout_area: str
    populations: dict[str, Population]
    connections: list[Connection]
    calibration: dict[str, Calibration]
    input_rate: float
    error_rate: float
    readout_shift: float
    forward: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def calibration_of(self, population: str) -> Calibration:
        """A population's calibration: its own (a population of an area computed population by
        population) or its area's."""
        own = self.calibration.get(population)
        return own if own is not None else self.calibration[self.populations[population].area]

    def model_of(self, population: str) -> NeuronModel:
        kind = self.populations[population].kind
        return self.readout_model if kind == "readout" else self.neuron
