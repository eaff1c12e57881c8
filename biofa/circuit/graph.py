"""Circuit declarations: areas of E/I populations, projections between them, feedback pathways.

A circuit is a directed acyclic graph of *areas*. Each area holds one or more named populations
on one spatial grid (channels of a conv area, units of a dense one), applies a nonlinearity,
optional batch normalisation and pooling, and receives *projections* (``conv``, ``dense``,
``identity``) from other areas; their outputs are summed. One ``input`` area holds the data, one
``readout`` area the class scores. A projection connects whole areas (``"v1"``, all to all) or
populations (``"v1.pyr"``), also within an area (feedforward inhibition), densely or sparsely,
subtractively or divisively (:mod:`biofa.circuit.wiring`).

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

from biofa.circuit.init import Init, RowMean
from biofa.circuit.kind import ProjectionKind, WeightedKind
from biofa.circuit.populations import NONLINEARITIES, Population, Units
from biofa.circuit.validation import area_order, validate_circuit
from biofa.circuit.wiring import check_address, check_projection, split, unique_names

POOLS = ("max", "avg", "global_avg")
#: how forward weights and the rules' random feedback tensors are drawn (biofa.rules.initializers)
INITS = ("he_normal", "xavier_uniform", "kaiming_uniform")
CONSTRAINTS = ("parametrize", "clamp")


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
    #: the readout's local populations besides its class scores (``readout(interneurons=...)``)
    interneurons: tuple[Population, ...] = ()
    #: the name of the readout's class-score population
    scores: str = "Units"

    @property
    def channels(self) -> int:
        return sum(p.size for p in self.populations)

    def nonlinearity_of(self, population: Population) -> str:
        """The nonlinearity ``population`` applies (its own, else the area's)."""
        return population.nonlinearity or self.nonlinearity

    @property
    def signs(self) -> list[int]:
        """The outgoing sign of every channel, in channel order."""
        return [p.sign for p in self.populations for _ in range(p.size)]


@dataclass(frozen=True)
class Projection:
    """``source -> target`` (addresses: ``"area"`` or ``"area.pop"``) of ``kind``; ``mode``,
    ``init``, ``lr_scale``, ``shunt_gain`` and ``shunt_lr_scale`` as for :meth:`Circuit.connect`."""

    source: str
    target: str
    kind: ProjectionKind
    mode: str | None = None
    init: Init | None = None
    lr_scale: float = 1.0
    shunt_gain: float = 1.0
    shunt_lr_scale: float | None = None

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    @property
    def op(self) -> str:
        return self.kind.op

    #: the areas and populations (``None``: every population of the area) at both ends
    source_area: str = field(init=False, repr=False, compare=False)
    source_population: str | None = field(init=False, repr=False, compare=False)
    target_area: str = field(init=False, repr=False, compare=False)
    target_population: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for end in ("source", "target"):
            area, pop = split(getattr(self, end))
            object.__setattr__(self, f"{end}_area", area)
            object.__setattr__(self, f"{end}_population", pop)

    @property
    def within(self) -> bool:
        """Whether source and target are populations of one area."""
        return self.source_area == self.target_area

    @property
    def divisive(self) -> bool:
        return self.mode in ("divisive", "subtractive+divisive")

    @property
    def population_level(self) -> bool:
        """Anything but an all-to-all, dense, default projection between whole areas."""
        return bool(
            self.source_population or self.target_population or self.mode or self.init
            or self.lr_scale != 1.0 or getattr(self.kind, "p", 1.0) != 1.0
            or getattr(self.kind, "mask", None) is not None
        )  # fmt: skip


@dataclass(frozen=True)
class FeedbackPathway:
    """The error of ``upper`` reaches ``lower`` through tensors learned by ``rule``; either end an
    area or a population (``"v1.pyr"``: only that population receives, or sends, the error)."""

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
    ``constraint`` is how signs (Dale's law) and other non-negative parameters are kept:
    ``"parametrize"`` (``W = s|V|``, the default) or ``"clamp"`` (``W = sV``, ``V`` clamped at 0
    after every optimiser step, as Cornford et al.'s code).
    """

    def __init__(self, name: str, *, init: str = "he_normal", constraint: str = "parametrize"):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"Circuit name {name!r} must be a Python identifier")
        if init not in INITS:
            raise ValueError(f"Circuit {name!r}: init={init!r} is not one of {', '.join(INITS)}")
        if constraint not in CONSTRAINTS:
            raise ValueError(
                f"Circuit {name!r}: constraint={constraint!r} is not one of "
                f"{', '.join(CONSTRAINTS)}"
            )
        self.name = name
        self.init = init
        #: how signs (Dale's law) and other non-negative parameters are kept: "parametrize"
        #: (``W = s|V|``) or "clamp" (``W = sV``, ``V`` clamped at 0 after every optimiser step)
        self.constraint = constraint
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
        """A hidden area of ``populations`` (``E(n, "pyr")``, ``I(n)``, ``Units(n)``; names unique).

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
        unique_names(name, populations)
        self._add(Area(name, tuple(populations), nonlinearity, batch_norm, pool, pool_size, bias))

    def readout(
        self,
        name: str = "readout",
        classes: int | None = None,
        *,
        interneurons: tuple[Population, ...] | list[Population] = (),
        scores: str = "Units",
    ) -> None:
        """The readout area: ``classes`` linear units (default: the data set's class count), a
        population named ``scores``, whose activity is the circuit's output; ``interneurons``
        are local populations of the readout (e.g. ``[I(1, "i", nonlinearity="identity")]``),
        wired like any others (``"out.i"``) but not part of the output."""
        if classes is not None and (not isinstance(classes, int) or classes <= 0):
            raise ValueError(f"readout {name!r}: classes={classes!r} must be a positive int")
        if any(a.role == "readout" for a in self.areas.values()):
            raise ValueError(f"readout {name!r}: the circuit already has a readout area")
        pops = (Units(classes, scores),) if classes else ()
        inter = tuple(interneurons)
        for p in inter:
            if not isinstance(p, Population):
                raise TypeError(f"readout {name!r}: {p!r} is not a population (E(n), I(n), ...)")
        unique_names(name, (Units(1, scores), *inter))
        self._add(Area(name, pops, "identity", role="readout", interneurons=inter, scores=scores))

    def connect(
        self,
        source: str,
        target: str,
        kind: ProjectionKind,
        *,
        mode: str | None = None,
        init: Init | None = None,
        lr_scale: float = 1.0,
        shunt_gain: float = 1.0,
        shunt_lr_scale: float | None = None,
    ) -> None:
        """A projection ``source -> target`` of ``kind`` (``conv(...)``, ``dense(...)``,
        ``local2d(...)``, ``identity()``: any :class:`~biofa.circuit.kind.ProjectionKind`).

        ``source`` and ``target`` are areas (all to all) or populations (``"v1.pyr"``), also of one
        area (``"v2.pv" -> "v2.pyr"``; acyclic). ``mode`` (inhibitory sources only):
        ``"subtractive"`` (default), ``"divisive"`` or ``"subtractive+divisive"``, with initial
        shunting gain ``shunt_gain`` (:mod:`biofa.circuit.wiring`). ``init``: how the weights
        start (:mod:`biofa.circuit.init`; default He-normal). ``lr_scale`` multiplies the
        gradient of the projection's weights (and shunting gains) before the optimiser sees it:
        a per-projection learning rate, e.g. Cornford et al.'s corrected inhibitory updates.
        """
        where = f"projection {source}->{target}"
        if not isinstance(kind, ProjectionKind):
            raise TypeError(
                f"{where}: {kind!r} is not a projection kind "
                "(conv(), dense(), local2d(), identity(), ...)"
            )
        if init is not None and not isinstance(init, Init):
            raise TypeError(f"{where}: init={init!r} is not an initialisation (he_normal(), ...)")
        for key, value in (("lr_scale", lr_scale), ("shunt_lr_scale", shunt_lr_scale)):
            if value is None and key == "shunt_lr_scale":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{where}: {key}={value!r} must be a positive number")
        p = Projection(source, target, kind, mode, init, float(lr_scale), shunt_gain,
                       shunt_lr_scale)  # fmt: skip
        check_projection(self, p)
        if isinstance(init, RowMean):
            of = next((q for q in self.weighted_projections() if q.name == init.of), None)
            if of is None or of.source != source:
                raise ValueError(
                    f"{where}: init=row_mean({init.of!r}) needs an earlier weighted projection "
                    f"{init.of!r} from {source!r}"
                )
        self.projections.append(p)

    def feedback(
        self, upper: str, lower: str, rule: str = "feedback_alignment", **options: Any
    ) -> None:
        """Declare the pathway carrying ``upper``'s error to ``lower``, learned by ``rule``.

        Layer-wise rules need a projection ``lower -> upper``; direct rules (error broadcast from
        the readout, e.g. ``direct_feedback_alignment``) need ``upper`` to be the readout.
        """
        if any(p.upper == upper and p.lower == lower for p in self.pathways):
            raise ValueError(f"feedback pathway {upper}->{lower} is declared twice")
        for end in (upper, lower):
            check_address(self, end, f"feedback pathway {upper}->{lower}")
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
        """Every projection into ``area`` (from other areas and within it)."""
        return [p for p in self.projections if p.target_area == area]

    def external(self, area: str) -> list[Projection]:
        """The projections into ``area`` from other areas."""
        return [p for p in self.projections if p.target_area == area and not p.within]

    def weighted_projections(self) -> list[Projection]:
        """Projections with a weight (every kind but ``identity``), in declaration order."""
        return [p for p in self.projections if isinstance(p.kind, WeightedKind)]

    def topological_order(self) -> list[str]:
        """Area names with every source before its targets; raises on a cycle, naming it."""
        return area_order(self)

    def validate(self) -> None:
        """Check the declarations (structure and shapes that need no data); raises ``ValueError``
        naming the offending area/projection. Rules are checked by :func:`biofa.rules.check`."""
        validate_circuit(self)

    # -- helpers ----------------------------------------------------------------------------
    def _add(self, area: Area) -> None:
        if not isinstance(area.name, str) or not area.name or "->" in area.name or "." in area.name:
            raise ValueError(
                f"area name {area.name!r} must be a non-empty string without '->' or '.' "
                "('area.pop' addresses a population)"
            )
        if area.name in self.areas:
            raise ValueError(f"area {area.name!r} is declared twice in circuit {self.name!r}")
        self.areas[area.name] = area

    def _need(self, name: str, where: str) -> None:
        if name not in self.areas:
            known = ", ".join(self.areas) or "none yet"
            raise ValueError(f"{where}: unknown area {name!r} (areas: {known})")

    def __repr__(self) -> str:
        areas = ", ".join(
            f"{a.name}{list(a.populations + a.interneurons)}" for a in self.areas.values()
        )
        return f"Circuit({self.name!r}: {areas}; {len(self.projections)} projections)"
