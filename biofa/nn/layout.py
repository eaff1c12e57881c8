"""Where every projection sits in the batched weights: groups, their rows and columns (no tensors).

The projections into one area that share a kind signature, a feedback rule with its options, a
stage, an inhibition mode and the answer to "does the error go back?" form one *projection group*
with ONE weight. Its rows are a contiguous range of the target area's channels (the target
populations, and any between them), its columns one contiguous range of channels per source area
(the source populations read, and any between them), so population wiring is *block structure*
of one weight: each projection is a block ``W[r0:r1, c0:c1]`` (:class:`Block`), and pairs of
populations no projection connects are masked to zero (:mod:`biofa.nn.constraints`). A circuit of
whole areas (all-to-all projections) gives exactly the groups it always had: every row, every
column, no mask.

Stages: an area whose populations receive from each other (within-area projections) computes
them in the order of :func:`biofa.circuit.wiring.stages`; a within-area group belongs to the stage
of its targets and reads the populations of the area computed before (on the area's grid, before
pooling). Groups from other areas have stage ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from biofa.circuit import Circuit, Projection
from biofa.circuit.kind import WeightedKind
from biofa.circuit.validation import AreaShape
from biofa.circuit.wiring import output_spans, spans, stages

__all__ = ["Block", "Columns", "GroupSpec", "plan_groups"]


@dataclass(frozen=True)
class Columns:
    """A group's input from one area: its channels ``start:stop`` (of the area's output, or of its
    populations before pooling when ``within``)."""

    area: str
    start: int
    stop: int
    within: bool = False


@dataclass(frozen=True)
class Block:
    """Projection ``projection``'s weights in its group: rows ``r0:r1``, columns ``c0:c1``; ``rows``
    and ``columns`` list the (population, group rows/columns) pairs it connects."""

    projection: Projection
    r0: int
    r1: int
    c0: int
    c1: int
    rows: tuple[tuple[str, int, int], ...]
    columns: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class GroupSpec:
    """One projection group (module docstring). ``rule``/``options``: its feedback rule;
    ``allowed``: per member, the ``(target, source)`` population pairs whose error goes back
    (``None``: all); ``legacy``: drawn as one weight from the group's name (every member an
    all-to-all default projection, as before populations could be wired)."""

    name: str
    target: str
    members: tuple[Projection, ...]
    stage: int | None
    mode: str | None
    rows: tuple[int, int]
    columns: tuple[Columns, ...]
    blocks: tuple[Block, ...]
    width: int
    rule: str
    options: tuple
    send_error: bool
    allowed: tuple[frozenset | None, ...]
    legacy: bool

    @property
    def sources(self) -> list[str]:
        return [c.area for c in self.columns]


def plan_groups(
    circuit: Circuit,
    area: str,
    shapes: dict[str, AreaShape],
    num_classes: int,
    assignment: dict,
    tapped: set[str],
) -> list[GroupSpec]:
    """The groups of the weighted projections into ``area``, in order of their first member.

    ``assignment`` maps a projection name to ``(rule, options, allowed pairs or None)``
    (:func:`biofa.rules.assign`), ``tapped`` holds the addresses a direct rule delivers to.
    """
    level = {n: k for k, stage in enumerate(stages(circuit, area)) for n in stage}
    keyed: dict[tuple, list[Projection]] = {}
    for p in circuit.incoming(area):
        if not isinstance(p.kind, WeightedKind):
            continue
        rule, options, _ = assignment[p.name]
        stage = level[p.target_population] if p.within else None
        tap = not p.within and (p.source in tapped or p.source_area in tapped)
        unique = p.name if p.kind.batch_norm else ""
        mode = None if p.mode == "subtractive" else p.mode
        key = (p.kind.signature(), rule, options, tap, unique, stage, mode)
        keyed.setdefault(key, []).append(p)
    return [
        _spec(circuit, area, members, key, shapes, num_classes, assignment)
        for key, members in keyed.items()
    ]


def _span(
    circuit: Circuit, area: str, pop: str | None, num_classes: int, inside: bool = True
) -> tuple[int, int]:
    """Channels of ``pop`` (``None``: all) among ``area``'s populations, or (``inside=False``)
    of its output (:func:`~biofa.circuit.wiring.output_spans`)."""
    if inside:
        here = spans(circuit.areas[area], num_classes)
    else:
        here = output_spans(circuit, area, num_classes)
    if pop is None:
        return 0, sum(s.size for s in here.values())
    return here[pop].start, here[pop].stop


def _spec(circuit, area, members, key, shapes, num_classes, assignment) -> GroupSpec:
    _, rule, options, tap, _, stage, mode = key
    input_area = circuit.input_area.name
    channels = shapes[area].pre[0]

    def source_range(p: Projection) -> tuple[int, int]:
        if p.source_area == input_area:
            return 0, shapes[input_area].out[0]
        return _span(circuit, p.source_area, p.source_population, num_classes, p.within)

    targets = [_span(circuit, area, p.target_population, num_classes) for p in members]

    rows = (min(t[0] for t in targets), max(t[1] for t in targets))
    by_area: dict[str, list[int]] = {}
    for p in members:
        lo, hi = source_range(p)
        got = by_area.setdefault(p.source_area, [lo, hi])
        got[0], got[1] = min(got[0], lo), max(got[1], hi)
    within = stage is not None
    columns = tuple(Columns(a, lo, hi, within) for a, (lo, hi) in by_area.items())
    kind = members[0].kind
    offsets, width = {}, 0
    for c in columns:
        offsets[c.area] = width
        width += (c.stop - c.start) * kind.columns_per_channel(_source_shape(c, shapes))
    blocks = []
    here = spans(circuit.areas[area], num_classes)
    for p, (t0, t1) in zip(members, targets, strict=True):
        col = next(c for c in columns if c.area == p.source_area)
        repeat = kind.columns_per_channel(_source_shape(col, shapes))
        lo, hi = source_range(p)
        c0 = offsets[p.source_area] + (lo - col.start) * repeat
        c1 = c0 + (hi - lo) * repeat
        row_pops = tuple(
            (f"{area}.{s.name}", s.start - rows[0], s.stop - rows[0]) for s in here.values()
            if t0 <= s.start and s.stop <= t1
        )  # fmt: skip
        col_pops = _column_populations(circuit, p, lo, hi, c0, repeat, num_classes, input_area)
        blocks.append(Block(p, t0 - rows[0], t1 - rows[0], c0, c1, row_pops, col_pops))
    legacy = not any(p.population_level for p in members) and rows == (0, channels)
    return GroupSpec(
        name="+".join(p.name for p in members),
        target=area,
        members=tuple(members),
        stage=stage,
        mode=mode,
        rows=rows,
        columns=columns,
        blocks=tuple(blocks),
        width=width,
        rule=rule,
        options=options,
        send_error=not tap,
        allowed=tuple(assignment[p.name][2] for p in members),
        legacy=legacy,
    )


def _source_shape(columns: Columns, shapes: dict[str, AreaShape]) -> tuple[int, ...]:
    shape = shapes[columns.area].pre if columns.within else shapes[columns.area].out
    return (columns.stop - columns.start, *shape[1:])


def _column_populations(circuit, p, lo, hi, c0, repeat, num_classes, input_area):
    """``(population address, first column, last column + 1)`` of each source population."""
    if p.source_area == input_area:
        name = circuit.areas[input_area].populations[0].name
        return ((f"{input_area}.{name}", c0, c0 + (hi - lo) * repeat),)
    out = []
    sources = spans(circuit.areas[p.source_area], num_classes) if p.within else output_spans(
        circuit, p.source_area, num_classes)  # fmt: skip
    for s in sources.values():
        if lo <= s.start and s.stop <= hi:
            start = c0 + (s.start - lo) * repeat
            out.append((f"{p.source_area}.{s.name}", start, start + s.size * repeat))
    return tuple(out)
