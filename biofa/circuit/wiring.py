"""Population wiring: addresses ``"area.pop"``, the channels each population occupies, the order an
area computes its populations in, and the checks a projection between populations must pass.

A projection or feedback pathway names its ends by *address*: ``"v1"`` (every population of area
``v1``: the all-to-all shorthand) or ``"v1.pyr"`` (population ``pyr`` of ``v1``). A projection
connects every population of its source address to every population of its target address; two
projections may not connect the same pair of populations.

*Within-area* projections (``c.connect("v2.pv", "v2.pyr", dense())``: feedforward inhibition)
make an area compute in stages: the population graph of an area (its within-area projections)
must be acyclic, and the area computes its populations in topological order (:func:`stages`),
each from the areas before it and the populations of its area computed earlier.

*Inhibition modes* (``mode=`` of ``connect``) say how an inhibitory population acts on its
targets: ``"subtractive"`` (the default: its negative weights add to the drive), ``"divisive"``
(shunting: it divides the drive, :math:`z = g\\,a / \\gamma`,
:math:`\\gamma = |W| (e^{\\alpha} \\odot r) + \\epsilon`) or ``"subtractive+divisive"``
(both through the same synapses: Cornford et al.'s interneurons, ``z = g (a - |W| r) / \\gamma``).
Only inhibitory populations inhibit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from biofa.circuit.kind import WeightedKind
from biofa.circuit.populations import Population, Units

if TYPE_CHECKING:
    from biofa.circuit.graph import Area, Circuit, Projection

__all__ = ["MODES", "Span", "check_projection", "output_spans", "pairs", "populations_of", "spans",
           "split", "stages"]  # fmt: skip

MODES = ("subtractive", "divisive", "subtractive+divisive")


@dataclass(frozen=True)
class Span:
    """Where population ``population`` sits among its area's channels: ``start:stop``."""

    population: Population
    start: int
    stop: int

    @property
    def name(self) -> str:
        return self.population.name

    @property
    def size(self) -> int:
        return self.stop - self.start


def split(address: str) -> tuple[str, str | None]:
    """``"v1.pyr" -> ("v1", "pyr")``, ``"v1" -> ("v1", None)``."""
    area, dot, pop = address.partition(".")
    return area, (pop if dot else None)


def populations_of(area: Area, num_classes: int | None = None) -> tuple[Population, ...]:
    """``area``'s populations in channel order; the readout's class scores first (``num_classes``
    of them when it declares none), then its interneurons."""
    if area.role != "readout":
        return area.populations
    scores = area.populations
    if not scores:
        scores = (Units(num_classes, area.scores),) if num_classes else ()
    return scores + area.interneurons


def spans(area: Area, num_classes: int | None = None) -> dict[str, Span]:
    """Population name -> its :class:`Span` of ``area``'s channels."""
    out, start = {}, 0
    for p in populations_of(area, num_classes):
        out[p.name] = Span(p, start, start + p.size)
        start += p.size
    return out


def output_spans(circuit: Circuit, area: str, num_classes: int | None = None) -> dict[str, Span]:
    """The populations of ``area`` other areas see, at their channels of its output: the
    readout's class scores; for a hidden area every population, unless nothing outside reads it
    whole -- then only the populations some projection out of it reads (local interneurons, read
    only within the area, are not part of its output)."""
    a = circuit.areas[area]
    here = spans(a, num_classes)
    if a.role == "readout":
        keep = [p.name for p in a.populations] or [a.scores]
    else:
        out = [p for p in circuit.projections if p.source_area == area and not p.within]
        read = {p.source_population for p in out}
        keep = list(here) if None in read or not read else [n for n in here if n in read]
    result, start = {}, 0
    for name in keep:
        s = here[name]
        result[name] = Span(s.population, start, start + s.size)
        start += s.size
    return result


def names_of(area: Area) -> list[str]:
    """The population names of ``area`` (the readout's scores included)."""
    names = [p.name for p in area.populations]
    if area.role == "readout" and not area.populations:
        names = [area.scores]
    return names + [p.name for p in area.interneurons]


def pairs(circuit: Circuit, source: str, target: str) -> set[tuple[str, str]]:
    """Every ``(target population, source population)`` address pair a projection or pathway
    between these addresses covers."""

    def expand(address: str) -> list[str]:
        area, pop = split(address)
        return [address] if pop else [f"{area}.{n}" for n in names_of(circuit.areas[area])]

    return {(t, s) for t in expand(target) for s in expand(source)}


def stages(circuit: Circuit, area: str) -> list[tuple[str, ...]]:
    """``area``'s population names by computation stage: each population after every population of
    the area it receives from. Raises ``ValueError`` naming a cycle."""
    names = names_of(circuit.areas[area])
    edges = [
        (p.source_population, p.target_population) for p in circuit.projections
        if p.within and p.target_area == area
    ]  # fmt: skip
    level: dict[str, int] = {}
    left = list(names)
    while left:
        ready = [n for n in left if all(s in level for s, t in edges if t == n)]
        if not ready:
            raise ValueError(
                f"area {area!r}: its populations form a cycle ({_cycle(left, edges, area)}); "
                "within-area projections must be acyclic (feedforward inhibition)"
            )
        for n in ready:
            level[n] = max([level[s] + 1 for s, t in edges if t == n], default=0)
        left = [n for n in left if n not in level]
    return [tuple(n for n in names if level[n] == k) for k in range(max(level.values()) + 1)]


def _cycle(left: list[str], edges: list[tuple[str, str]], area: str) -> str:
    path = [left[0]]
    while path.count(path[-1]) < 2:
        path.append(next(s for s, t in edges if t == path[-1] and s in left))
    path = path[path.index(path[-1]) :][::-1]
    return " -> ".join(f"{area}.{n}" for n in path)


def _address(circuit: Circuit, address: object, where: str) -> None:
    if not isinstance(address, str):
        raise ValueError(f"{where}: {address!r} is not an area or 'area.population' name")
    area, pop = split(address)
    circuit._need(area, where)
    if pop is not None and pop not in names_of(circuit.areas[area]):
        known = ", ".join(names_of(circuit.areas[area]))
        raise ValueError(
            f"{where}: unknown population {address!r} (populations of {area!r}: {known})"
        )


def check_address(circuit: Circuit, address: object, where: str) -> None:
    """``ValueError`` naming ``where`` unless ``address`` is a known area or population."""
    _address(circuit, address, where)


def check_projection(circuit: Circuit, p: Projection) -> None:
    """The checks of :meth:`Circuit.connect` (module docstring); one-line ``ValueError``\\ s."""
    where = f"projection {p.name}"
    for end in (p.source, p.target):
        _address(circuit, end, where)
    if circuit.areas[p.target_area].role == "input":
        raise ValueError(f"{where}: the input area receives no projections")
    if not isinstance(p.kind, WeightedKind) and (p.source_population or p.target_population):
        raise ValueError(
            f"{where}: {p.op} projections connect whole areas (they have no weights to wire "
            "population to population)"
        )
    if p.within and not (p.source_population and p.target_population):
        raise ValueError(
            f"{where}: a projection within area {p.source_area!r} connects two of its "
            "populations ('area.pop' at both ends)"
        )
    if p.within and circuit.areas[p.source_area].role == "input":
        raise ValueError(f"{where}: the input area has no populations to wire")
    new = pairs(circuit, p.source, p.target)
    for q in circuit.projections:
        if q.source_area == p.source_area and q.target_area == p.target_area:
            if q.source == p.source and q.target == p.target:
                raise ValueError(f"projection {p.name} is declared twice")
            both = new & pairs(circuit, q.source, q.target)
            if both:
                t, s = min(both)
                raise ValueError(
                    f"{where}: projection {q.name} already connects {s} to {t} (a pair of "
                    "populations is connected by one projection)"
                )
    _check_mode(circuit, p, where)
    if p.within:
        probe = [*circuit.projections, p]
        saved, circuit.projections = circuit.projections, probe
        try:
            stages(circuit, p.target_area)
        finally:
            circuit.projections = saved


def _check_mode(circuit: Circuit, p: Projection, where: str) -> None:
    if not p.divisive:
        if p.shunt_gain != 1.0 or p.shunt_lr_scale is not None:
            raise ValueError(f"{where}: shunt_gain and shunt_lr_scale are for divisive inhibition "
                             "(give mode='divisive' or 'subtractive+divisive')")  # fmt: skip
    if p.mode is None:
        return
    if p.mode not in MODES:
        raise ValueError(f"{where}: mode={p.mode!r} is not one of {', '.join(MODES)}")
    if not isinstance(p.kind, WeightedKind) or p.kind.batch_norm:
        raise ValueError(
            f"{where}: mode={p.mode!r} needs a weighted projection without its own batch norm"
        )
    area = circuit.areas[p.source_area]
    if area.role == "input":
        raise ValueError(f"{where}: mode={p.mode!r}: the input area does not inhibit")
    sources = [s for s in populations_of(area) if p.source_population in (None, s.name)]
    for s in sources:
        if s.sign > 0:
            raise ValueError(
                f"{where}: mode={p.mode!r} declares population '{p.source_area}.{s.name}' "
                "to inhibit, but it is excitatory (E); only I populations inhibit"
            )
        if s.sign == 0:
            raise ValueError(
                f"{where}: mode={p.mode!r} needs an inhibitory source population (I); "
                f"'{p.source_area}.{s.name}' is {s.kind} (no sign)"
            )
    if p.mode != "subtractive" and (isinstance(p.shunt_gain, bool) or not isinstance(
            p.shunt_gain, int | float) or not p.shunt_gain > 0):  # fmt: skip
        raise ValueError(f"{where}: shunt_gain={p.shunt_gain!r} must be a positive number")


def unique_names(area: str, populations) -> None:
    """``ValueError`` if two populations of ``area`` share a name."""
    seen: set[str] = set()
    for p in populations:
        if isinstance(p, Population) and p.name in seen:
            raise ValueError(
                f"area {area!r}: two populations are named {p.name!r}; name them, e.g. "
                f"E(64, 'pyr'), E(32, 'stellate') (populations are addressed as '{area}.name')"
            )
        seen.add(p.name)
