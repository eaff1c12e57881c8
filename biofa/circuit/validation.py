"""Validation and shape inference of a :class:`~biofa.circuit.Circuit`.

Every error names the area, projection or pathway at fault and says what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from biofa.circuit import Circuit
from biofa.circuit.projections import Conv, Dense, Identity


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
    spatial = _spatial_kinds(circuit, order)
    for p in circuit.projections:
        src_spatial = spatial[p.source]
        if isinstance(p.kind, Conv) and not src_spatial:
            raise ValueError(
                f"conv projection {p.name!r} reads area {p.source!r}, which is a vector "
                "(dense, or globally pooled); conv needs a spatial source"
            )
        if isinstance(p.kind, Dense) and src_spatial and not p.kind.flatten:
            raise ValueError(
                f"dense projection {p.name!r} reads spatial area {p.source!r}: use "
                f"dense(flatten=True) or pool='global_avg' on {p.source!r}"
            )
    for area in circuit.areas.values():
        if area.pool in ("max", "avg") and not _pre_spatial(circuit, area.name, spatial):
            raise ValueError(f"area {area.name!r}: pool={area.pool!r} needs a spatial (conv) area")
    _check_pathways(circuit)


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
    incoming = circuit.incoming(name)
    if not incoming:
        return True  # the input area holds images
    return not any(isinstance(p.kind, Dense) for p in incoming)


def _spatial_kinds(circuit: Circuit, order: list[str]) -> dict[str, bool]:
    """Whether each area's *output* is spatial (C, H, W) or a vector."""
    spatial: dict[str, bool] = {}
    for name in order:
        area = circuit.areas[name]
        incoming = circuit.incoming(name)
        kinds = {type(p.kind) for p in incoming}
        if Conv in kinds and Dense in kinds:
            raise ValueError(
                f"area {name!r} receives both conv and dense projections; use one kind"
            )
        if area.role == "readout" and Conv in kinds:
            bad = next(p for p in incoming if isinstance(p.kind, Conv))
            raise ValueError(
                f"conv projection {bad.name!r} into dense area {name!r} (the readout is dense): "
                "use dense(flatten=True)"
            )
        if not incoming:
            pre = True
        elif Dense in kinds:
            pre = False
        elif Conv in kinds:
            pre = True
        else:  # identities only: the target takes its sources' kind
            pre = spatial[incoming[0].source]
        for p in incoming:
            if isinstance(p.kind, Identity) and spatial[p.source] != pre:
                raise ValueError(
                    f"identity projection {p.name!r} joins a spatial and a vector area; "
                    "shapes must match"
                )
        spatial[name] = pre and area.pool != "global_avg" and area.role != "readout"
    return spatial


def _check_pathways(circuit: Circuit) -> None:
    from biofa.rules import get as get_rule

    readout = circuit.readout_area.name
    for pw in circuit.resolved_pathways():
        where = f"feedback pathway {pw.name!r}"
        for end in (pw.upper, pw.lower):
            circuit._need(end, where)
        rule = get_rule(pw.rule)  # ValueError listing the rules if unknown
        rule.check_options(pw.options, where)
        if rule.scope == "direct":
            if pw.upper != readout:
                raise ValueError(
                    f"{where}: rule {pw.rule!r} broadcasts the readout's error, so "
                    f"its upper end must be the readout {readout!r}"
                )
            if circuit.areas[pw.lower].role != "hidden":
                raise ValueError(f"{where}: rule {pw.rule!r} delivers errors to hidden areas only")
            continue
        projection = next(
            (p for p in circuit.projections if p.source == pw.lower and p.target == pw.upper), None
        )
        if projection is None:
            raise ValueError(
                f"{where}: areas {pw.lower!r} and {pw.upper!r} are not connected "
                f"(no projection {pw.lower}->{pw.upper})"
            )
        if isinstance(projection.kind, Identity):
            raise ValueError(
                f"{where}: {projection.name!r} is an identity projection without "
                "weights; its error passes unchanged, so it takes no feedback pathway"
            )
        if projection.op not in rule.supports:
            raise ValueError(
                f"{where}: rule {pw.rule!r} does not support {projection.op} "
                f"projections (it supports {', '.join(sorted(rule.supports))})"
            )


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
        pres = {}
        for p in circuit.incoming(name):
            src = shapes[p.source].out
            if isinstance(p.kind, Conv):
                h, w = p.kind.out_size(src[1]), p.kind.out_size(src[2])
                if h <= 0 or w <= 0:
                    raise ValueError(
                        f"conv projection {p.name!r} shrinks {src[1]}x{src[2]} to nothing"
                    )
                pres[p.name] = (channels, h, w)
            elif isinstance(p.kind, Dense):
                pres[p.name] = (channels,)
            else:
                pres[p.name] = src
        if len(set(pres.values())) > 1:
            detail = ", ".join(f"{k}: {v}" for k, v in pres.items())
            raise ValueError(f"area {name!r}: its inputs have different shapes ({detail})")
        pre = next(iter(pres.values()))
        if pre[0] != channels:
            raise ValueError(
                f"area {name!r}: identity input has {pre[0]} channels, the area has {channels}"
            )
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
