"""Validation and shape inference of a circuit's declarations (no torch, no rules).

Every error names the area or projection at fault and says what is allowed. What a projection can
read and what it produces is its kind's business (:class:`~biofa.circuit.kind.ProjectionKind`);
this module only walks the graph. Feedback pathways are checked against their rules by
:func:`biofa.rules.check`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from biofa.circuit.graph import Circuit

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
        if area.role != "input" and not circuit.incoming(name):
            raise ValueError(f"area {name!r} receives no projection (connect something into it)")
    _check_reaches_readout(circuit)
    spatial = _spatial(circuit, order)
    for area in circuit.areas.values():
        if area.pool in ("max", "avg") and not _pre_spatial(circuit, area.name, spatial):
            raise ValueError(f"area {area.name!r}: pool={area.pool!r} needs a spatial (conv) area")
    for pw in circuit.pathways:
        for end in (pw.upper, pw.lower):
            circuit._need(end, f"feedback pathway {pw.name!r}")


def _check_reaches_readout(circuit: Circuit) -> None:
    reaches = {circuit.readout_area.name}
    changed = True
    while changed:
        changed = False
        for p in circuit.projections:
            if p.target in reaches and p.source not in reaches:
                reaches.add(p.source)
                changed = True
    for name in circuit.areas:
        if name not in reaches:
            raise ValueError(f"area {name!r} does not project (directly or not) to the readout")


def _pre_spatial(circuit: Circuit, name: str, spatial: dict[str, bool]) -> bool:
    """Whether area ``name``'s summed input (before pooling) is spatial."""
    incoming = circuit.incoming(name)
    if not incoming:
        return True  # the input area holds images
    return incoming[0].kind.spatial_output(spatial[incoming[0].source])


def _spatial(circuit: Circuit, order: list[str]) -> dict[str, bool]:
    """Whether each area's *output* is spatial (C, H, W) or a vector; checks every projection's
    source against its kind and that an area's inputs agree."""
    spatial: dict[str, bool] = {}
    for name in order:
        area = circuit.areas[name]
        incoming = circuit.incoming(name)
        for p in incoming:
            p.kind.check_source(p.name, p.source, spatial[p.source])
        outputs = {p.name: p.kind.spatial_output(spatial[p.source]) for p in incoming}
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
        channels = num_classes if area.role == "readout" else area.channels
        pres = {
            p.name: tuple(p.kind.output_shape(p.name, shapes[p.source].out, channels))
            for p in circuit.incoming(name)
        }
        if len(set(pres.values())) > 1:
            detail = ", ".join(f"{k}: {v}" for k, v in pres.items())
            raise ValueError(f"area {name!r}: its inputs have different shapes ({detail})")
        pre = next(iter(pres.values()))
        shapes[name] = AreaShape(pre, _pooled(area.pool, area.pool_size, pre, name))
    return shapes


def _pooled(pool: str | None, size: int, pre: tuple[int, ...], name: str) -> tuple[int, ...]:
    if pool is None:
        return pre
    if pool == "global_avg":
        return (pre[0],)
    if pre[1] < size or pre[2] < size:
        raise ValueError(f"area {name!r}: {pool} pooling {size}x{size} of a {pre[1]}x{pre[2]} map")
    return (pre[0], pre[1] // size, pre[2] // size)
