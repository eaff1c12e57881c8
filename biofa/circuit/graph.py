"""Circuit declarations: areas of E/I populations, projections between them, feedback pathways.

A circuit is a directed acyclic graph of *areas*. Each area holds one or more populations on one
spatial grid (channels of a conv area, units of a dense one), applies a nonlinearity, optional
batch normalisation and pooling, and receives *projections* (``conv``, ``dense``, ``identity``)
from other areas; their outputs are summed. One ``input`` area holds the data, one ``readout``
area the class scores.

*Feedback pathways* are declared separately, each with its own rule: ``feedback(upper, lower,
rule=...)`` says how the error of ``upper`` reaches ``lower``. A projection without a pathway
learns by backprop. Nothing here touches torch; :func:`biofa.nn.compiler.compile` builds the
network.

Example
-------
>>> from biofa import Circuit, E, I, conv, dense
>>> c = Circuit("tiny")
>>> c.input("image")
>>> c.area("v1", E(8), I(2), pool="max")
>>> c.readout("out")
>>> c.connect("image", "v1", conv(3))
>>> c.connect("v1", "out", dense(flatten=True))
>>> c.feedback_everywhere("feedback_alignment")
>>> c.validate()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from biofa.circuit.kind import ProjectionKind, WeightedKind
from biofa.circuit.populations import Population, Units
from biofa.circuit.validation import validate_circuit

# "sign" (signum) is not differentiable: only rules that never use its derivative (EKDAA) train
# through it; see biofa.nn.compiler.ACTIVATIONS.
NONLINEARITIES = ("relu", "tanh", "sigmoid", "sign", "identity")
POOLS = ("max", "avg", "global_avg")
#: how forward weights and the rules' random feedback tensors are drawn (biofa.rules.initializers)
INITS = ("he_normal", "xavier_uniform", "kaiming_uniform")


@dataclass(frozen=True)
class Area:
    """A named group of populations on one grid (see the module docstring)."""

    name: str
    populations: tuple[Population, ...]
    nonlinearity: str = "relu"
    batch_norm: bool = False
    pool: str | None = None
    pool_size: int = 2
    bias: bool = True
    role: str = "hidden"  # "input", "hidden" or "readout"

    @property
    def channels(self) -> int:
        return sum(p.size for p in self.populations)

    @property
    def signs(self) -> list[int]:
        """The outgoing sign of every channel, in channel order."""
        return [p.sign for p in self.populations for _ in range(p.size)]


@dataclass(frozen=True)
class Projection:
    source: str
    target: str
    kind: ProjectionKind

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    @property
    def op(self) -> str:
        return self.kind.op


@dataclass(frozen=True)
class FeedbackPathway:
    """The error of area ``upper`` reaches area ``lower`` through tensors learned by ``rule``."""

    upper: str
    lower: str
    rule: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.upper}->{self.lower}"


class Circuit:
    """A declared circuit (see the module docstring). Build it in a spec's ``circuit()``.

    ``init`` is how every forward weight and every rule's random feedback tensor is drawn:
    ``"he_normal"`` (the default), ``"xavier_uniform"`` (as BioTorch and the PFA code) or
    ``"kaiming_uniform"`` (PyTorch's default layer init); see :mod:`biofa.rules.initializers`.
    """

    def __init__(self, name: str, *, init: str = "he_normal"):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"Circuit name {name!r} must be a Python identifier")
        if init not in INITS:
            raise ValueError(f"Circuit {name!r}: init={init!r} is not one of {', '.join(INITS)}")
        self.name = name
        self.init = init
        self.areas: dict[str, Area] = {}
        self.projections: list[Projection] = []
        self.pathways: list[FeedbackPathway] = []
        #: ``(rule, options)`` of :meth:`feedback_everywhere`, or ``None``
        self.everywhere: tuple[str, dict[str, Any]] | None = None

    # -- declarations -------------------------------------------------------------------------
    def input(self, name: str = "input", *, kind: str = "Units") -> None:
        """The input area; its channel count comes from the data. ``kind``: "Units" or "E"."""
        if kind not in ("Units", "E"):
            raise ValueError(f"input {name!r}: kind={kind!r} must be 'Units' or 'E'")
        if any(a.role == "input" for a in self.areas.values()):
            raise ValueError(f"input {name!r}: the circuit already has an input area")
        sign = 1 if kind == "E" else 0
        self._add(Area(name, (Population(1, sign, kind),), "identity", role="input", bias=False))

    def area(
        self,
        name: str,
        *populations: Population,
        nonlinearity: str = "relu",
        batch_norm: bool = False,
        pool: str | None = None,
        pool_size: int = 2,
        bias: bool | None = None,
    ) -> None:
        """A hidden area of ``populations`` (``E(n)``, ``I(n)``, ``Units(n)``).

        ``pool`` is ``None``, ``"max"``, ``"avg"`` (``pool_size`` x ``pool_size``, stride the same)
        or ``"global_avg"`` (the area's output becomes a vector). ``bias`` defaults to "no bias
        when batch norm supplies one".
        """
        if not populations:
            raise ValueError(f"area {name!r}: give at least one population, e.g. E(16), I(4)")
        for p in populations:
            if not isinstance(p, Population):
                raise TypeError(
                    f"area {name!r}: {p!r} is not a population (use E(n), I(n), Units(n))"
                )
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"area {name!r}: nonlinearity={nonlinearity!r} is not one of "
                f"{', '.join(NONLINEARITIES)}"
            )
        if pool is not None and pool not in POOLS:
            raise ValueError(
                f"area {name!r}: pool={pool!r} is not None or one of {', '.join(POOLS)}"
            )
        if not isinstance(pool_size, int) or pool_size <= 0:
            raise ValueError(f"area {name!r}: pool_size={pool_size!r} must be a positive int")
        bias = (not batch_norm) if bias is None else bias
        self._add(Area(name, tuple(populations), nonlinearity, batch_norm, pool, pool_size, bias))

    def readout(self, name: str = "readout", classes: int | None = None) -> None:
        """The readout area: ``classes`` linear units (default: the data set's class count)."""
        if classes is not None and (not isinstance(classes, int) or classes <= 0):
            raise ValueError(f"readout {name!r}: classes={classes!r} must be a positive int")
        if any(a.role == "readout" for a in self.areas.values()):
            raise ValueError(f"readout {name!r}: the circuit already has a readout area")
        pops = (Units(classes),) if classes else ()
        self._add(Area(name, pops, "identity", role="readout"))

    def connect(self, source: str, target: str, kind: ProjectionKind) -> None:
        """A projection ``source -> target`` of ``kind`` (``conv(...)``, ``dense(...)``,
        ``local2d(...)``, ``identity()``: any :class:`~biofa.circuit.kind.ProjectionKind`)."""
        if not isinstance(kind, ProjectionKind):
            raise TypeError(
                f"projection {source}->{target}: {kind!r} is not a projection kind "
                "(conv(), dense(), local2d(), identity(), ...)"
            )
        for end in (source, target):
            self._need(end, f"projection {source}->{target}")
        if any(p.source == source and p.target == target for p in self.projections):
            raise ValueError(f"projection {source}->{target} is declared twice")
        if self.areas[target].role == "input":
            raise ValueError(
                f"projection {source}->{target}: the input area receives no projections"
            )
        self.projections.append(Projection(source, target, kind))

    def feedback(
        self, upper: str, lower: str, rule: str = "feedback_alignment", **options: Any
    ) -> None:
        """Declare the pathway carrying ``upper``'s error to ``lower``, learned by ``rule``.

        Layer-wise rules need a projection ``lower -> upper``; direct rules (error broadcast from
        the readout, e.g. ``direct_feedback_alignment``) need ``upper`` to be the readout.
        """
        if any(p.upper == upper and p.lower == lower for p in self.pathways):
            raise ValueError(f"feedback pathway {upper}->{lower} is declared twice")
        self.pathways.append(FeedbackPathway(upper, lower, rule, dict(options)))

    def feedback_everywhere(self, rule: str, **options: Any) -> None:
        """Use ``rule`` wherever no pathway is declared (every weighted projection, or every
        hidden area for direct rules; :func:`biofa.rules.resolve` expands it)."""
        self.everywhere = (rule, dict(options))

    # -- queries ----------------------------------------------------------------------------
    @property
    def input_area(self) -> Area:
        return next(a for a in self.areas.values() if a.role == "input")

    @property
    def readout_area(self) -> Area:
        return next(a for a in self.areas.values() if a.role == "readout")

    def incoming(self, area: str) -> list[Projection]:
        return [p for p in self.projections if p.target == area]

    def weighted_projections(self) -> list[Projection]:
        """Projections with a weight (every kind but ``identity``), in declaration order."""
        return [p for p in self.projections if isinstance(p.kind, WeightedKind)]

    def topological_order(self) -> list[str]:
        """Area names with every source before its targets; raises on a cycle, naming it."""
        indegree = {name: 0 for name in self.areas}
        for p in self.projections:
            indegree[p.target] += 1
        ready = [n for n, d in indegree.items() if d == 0]
        order: list[str] = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for p in self.projections:
                if p.source == name:
                    indegree[p.target] -= 1
                    if indegree[p.target] == 0:
                        ready.append(p.target)
        if len(order) < len(self.areas):
            cycle = self._a_cycle(set(self.areas) - set(order))
            raise ValueError(
                f"circuit {self.name!r} has a cycle: {' -> '.join(cycle)} (a circuit is a "
                "directed acyclic graph of areas)"
            )
        return order

    def _a_cycle(self, left: set[str]) -> list[str]:
        """One cycle among ``left`` (the areas a topological sort could not place), in order."""
        out = {n: [p.target for p in self.projections if p.source == n and p.target in left]
               for n in left}  # fmt: skip
        while True:  # peel areas that only lead out of the cycles
            sinks = {n for n in left if not any(t in left for t in out[n])}
            if not sinks:
                break
            left -= sinks
        path, seen = [min(left)], set()
        while path[-1] not in seen:
            seen.add(path[-1])
            path.append(min(t for t in out[path[-1]] if t in left))
        return path[path.index(path[-1]) :]

    def validate(self) -> None:
        """Check the declarations (structure and shapes that need no data); raises ``ValueError``
        naming the offending area/projection. Rules are checked by :func:`biofa.rules.check`."""
        validate_circuit(self)

    # -- helpers ----------------------------------------------------------------------------
    def _add(self, area: Area) -> None:
        if not isinstance(area.name, str) or not area.name or "->" in area.name:
            raise ValueError(f"area name {area.name!r} must be a non-empty string without '->'")
        if area.name in self.areas:
            raise ValueError(f"area {area.name!r} is declared twice in circuit {self.name!r}")
        self.areas[area.name] = area

    def _need(self, name: str, where: str) -> None:
        if name not in self.areas:
            known = ", ".join(self.areas) or "none yet"
            raise ValueError(f"{where}: unknown area {name!r} (areas: {known})")

    def __repr__(self) -> str:
        areas = ", ".join(f"{a.name}{list(a.populations)}" for a in self.areas.values())
        return f"Circuit({self.name!r}: {areas}; {len(self.projections)} projections)"
