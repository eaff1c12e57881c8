"""Validation and shape inference of a circuit's declarations (no torch, no rules).

Every error names the area or projection at fault and says what is allowed. What a projection can
read and what it produces is its kind's business (:class:`~biofa.circuit.kind.ProjectionKind`);
this module only walks the graph. Feedback pathways are checked against their rules by
:func:`biofa.rules.check`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from biofa.circuit.connectivity import mask_shape
from biofa.circuit.wiring import check_address, names_of, output_spans, spans, stages

if TYPE_CHECKING:
    from biofa.circuit.graph import Circuit, Projection

__all__ = ["AreaShape", "infer_shapes", "validate_circuit"]


@dataclass(frozen=True)
class AreaShape:
    """Shapes of one example: ``pre`` is the summed input (before pooling), ``out`` the output."""

    pre: tuple[int, ...]
    out: tuple[int, ...]

    @property
    def spatial(self) -> bool:
        return len(self.out) == 3


def validate_circuit(circuit: Circuit) -> None:
    """Structural checks that need no data shape (see the module docstring)."""
    roles = [a.role for a in circuit.areas.values()]
    if roles.count("input") != 1:
        raise ValueError(f"circuit {circuit.name!r} needs exactly one input area (c.input(...))")
    if roles.count("readout") != 1:
        raise ValueError(
            f"circuit {circuit.name!r} needs exactly one readout area (c.readout(...))"
        )
    order = circuit.topological_order()
    for name in order:
        area = circuit.areas[name]
        if area.role != "input" and not circuit.external(name):
            raise ValueError(
                f"area {name!r} receives no projection from another area (connect something "
                "into it)"
            )
        if area.role != "input":
            stages(circuit, name)  # raises on a cycle among its populations
            _check_driven(circuit, name)
    _check_reaches_readout(circuit)
    spatial = _spatial(circuit, order)
    for area in circuit.areas.values():
        if area.pool in ("max", "avg") and not _pre_spatial(circuit, area.name, spatial):
            raise ValueError(f"area {area.name!r}: pool={area.pool!r} needs a spatial (conv) area")
    for pw in circuit.pathways:
        for end in (pw.upper, pw.lower):
            check_address(circuit, end, f"feedback pathway {pw.name!r}")


def area_order(circuit: Circuit) -> list[str]:
    """Area names with every source before its targets (projections within an area aside);
    raises ``ValueError`` naming a cycle."""
    between = [p for p in circuit.projections if not p.within]
    indegree = {name: 0 for name in circuit.areas}
    for p in between:
        indegree[p.target_area] += 1
    ready = [n for n, d in indegree.items() if d == 0]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for p in between:
            if p.source_area == name:
                indegree[p.target_area] -= 1
                if indegree[p.target_area] == 0:
                    ready.append(p.target_area)
    if len(order) < len(circuit.areas):
        cycle = _a_cycle(circuit, set(circuit.areas) - set(order))
        raise ValueError(
            f"circuit {circuit.name!r} has a cycle: {' -> '.join(cycle)} (a circuit is a "
            "directed acyclic graph of areas)"
        )
    return order


def _a_cycle(circuit: Circuit, left: set[str]) -> list[str]:
    """One cycle among ``left`` (the areas a topological sort could not place), in order."""
    out = {n: [p.target_area for p in circuit.projections
               if p.source_area == n and p.target_area in left and not p.within]
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


def _check_driven(circuit: Circuit, name: str) -> None:
    """Every population of area ``name`` receives some projection."""
    incoming = circuit.incoming(name)
    if any(p.target_population is None for p in incoming):
        return
    reached = {p.target_population for p in incoming}
    for pop in names_of(circuit.areas[name]):
        if pop not in reached:
            raise ValueError(
                f"population '{name}.{pop}' receives no projection (connect something into it, "
                f"or into the whole area {name!r})"
            )


def _check_reaches_readout(circuit: Circuit) -> None:
    reaches = {circuit.readout_area.name}
    changed = True
    while changed:
        changed = False
        for p in circuit.projections:
            if p.target_area in reaches and p.source_area not in reaches:
                reaches.add(p.source_area)
                changed = True
    for name in circuit.areas:
        if name not in reaches:
            raise ValueError(f"area {name!r} does not project (directly or not) to the readout")


def _pre_spatial(circuit: Circuit, name: str, spatial: dict[str, bool]) -> bool:
    """Whether area ``name``'s summed input (before pooling) is spatial."""
    incoming = circuit.external(name)
    if not incoming:
        return True  # the input area holds images
    return incoming[0].kind.spatial_output(spatial[incoming[0].source_area])


def _spatial(circuit: Circuit, order: list[str]) -> dict[str, bool]:
    """Whether each area's *output* is spatial (C, H, W) or a vector; checks every projection's
    source against its kind and that an area's inputs agree."""
    spatial: dict[str, bool] = {}
    for name in order:
        area = circuit.areas[name]
        incoming = circuit.external(name)
        for p in incoming:
            p.kind.check_source(p.name, p.source, spatial[p.source_area])
        outputs = {p.name: p.kind.spatial_output(spatial[p.source_area]) for p in incoming}
        if len(set(outputs.values())) > 1:
            grid = [n for n, s in outputs.items() if s]
            vector = [n for n, s in outputs.items() if not s]
            raise ValueError(
                f"area {name!r} receives spatial ({', '.join(grid)}) and vector "
                f"({', '.join(vector)}) inputs; its inputs must have one shape"
            )
        pre = next(iter(outputs.values())) if outputs else True
        if area.role == "readout" and pre:
            bad = next(p for p in incoming if outputs[p.name])
            raise ValueError(
                f"{bad.kind.op} projection {bad.name!r} into dense area {name!r} (the readout is "
                "dense): use dense(flatten=True)"
            )
        for p in circuit.incoming(name):  # within the area: on its own (pre-pooling) grid
            if p.within:
                p.kind.check_source(p.name, p.source, pre)
                if p.kind.spatial_output(pre) != pre:
                    raise ValueError(f"projection {p.name!r} changes its area's shape")
        spatial[name] = pre and area.pool != "global_avg" and area.role != "readout"
    return spatial


def infer_shapes(
    circuit: Circuit, input_shape: tuple[int, int, int], num_classes: int
) -> dict[str, AreaShape]:
    """Per-area shapes for one example of ``input_shape`` (C, H, W); raises on mismatches."""
    shapes: dict[str, AreaShape] = {}
    readout = circuit.readout_area
    if readout.populations and readout.channels != num_classes:
        raise ValueError(
            f"readout {readout.name!r} declares {readout.channels} classes but the "
            f"data has {num_classes}"
        )
    for name in circuit.topological_order():
        area = circuit.areas[name]
        if area.role == "input":
            shapes[name] = AreaShape(tuple(input_shape), tuple(input_shape))
            continue
        here = spans(area, num_classes)
        channels = sum(s.size for s in here.values())
        pres = {}
        for p in circuit.external(name):
            source = _source_shape(circuit, p, shapes[p.source_area].out, num_classes)
            pres[p.name] = tuple(p.kind.output_shape(p.name, source, channels))
            _check_mask(p, source, pres[p.name], _rows(p, here, channels))
        if len(set(pre[1:] for pre in pres.values())) > 1:
            detail = ", ".join(f"{k}: {v}" for k, v in pres.items())
            raise ValueError(f"area {name!r}: its inputs have different shapes ({detail})")
        pre = (channels, *next(iter(pres.values()))[1:])
        for p in circuit.incoming(name):
            if p.within:
                source = (here[p.source_population].size, *pre[1:])
                got = tuple(p.kind.output_shape(p.name, source, channels))
                if got[1:] != pre[1:]:
                    raise ValueError(
                        f"projection {p.name!r} maps its area's {pre[1:]} grid to {got[1:]}; a "
                        "projection within an area keeps the grid (e.g. conv(1), conv(3))"
                    )
                _check_mask(p, source, got, _rows(p, here, channels))
        out = _pooled(area.pool, area.pool_size, pre, name)
        visible = sum(s.size for s in output_spans(circuit, name, num_classes).values())
        shapes[name] = AreaShape(pre, (visible, *out[1:]))
    return shapes


def _source_shape(circuit: Circuit, p: Projection, shape: tuple[int, ...], num_classes: int):
    """What a projection reads of its source area's output ``shape``: its population's channels."""
    if p.source_population is None:
        return shape
    span = output_spans(circuit, p.source_area, num_classes)[p.source_population]
    return (span.size, *shape[1:])


def _rows(p: Projection, here: dict, channels: int) -> int:
    return channels if p.target_population is None else here[p.target_population].size


def _check_mask(p: Projection, source: tuple[int, ...], out: tuple[int, ...], rows: int) -> None:
    """``ValueError`` naming ``p`` unless its mask (if any) has one of the shapes it may have
    (:mod:`biofa.circuit.connectivity`)."""
    mask = getattr(p.kind, "mask", None)
    if mask is None:
        return
    columns = source[0] * p.kind.columns_per_channel(source)
    full = tuple(p.kind.weight_shape(rows, columns, (rows, *out[1:])))
    allowed = {(rows, source[0]), (rows, columns), full}
    got = mask_shape(mask)
    if got not in allowed:
        options = " or ".join(str(a) for a in sorted(allowed, key=len))
        raise ValueError(
            f"projection {p.name!r}: its mask has shape {got}, expected {options} "
            f"({rows} target units x {source[0]} source channels)"
        )
    if math.prod(got) == 0:
        raise ValueError(f"projection {p.name!r}: its mask is empty")


def _pooled(pool: str | None, size: int, pre: tuple[int, ...], name: str) -> tuple[int, ...]:
    if pool is None:
        return pre
    if pool == "global_avg":
        return (pre[0],)
    if pre[1] < size or pre[2] < size:
        raise ValueError(f"area {name!r}: {pool} pooling {size}x{size} of a {pre[1]}x{pre[2]} map")
    return (pre[0], pre[1] // size, pre[2] // size)
