"""A circuit's feedback pathways as its rules see them: expanded, assigned, checked, listed.

:func:`resolve` expands ``feedback_everywhere`` into one pathway per weighted projection no
declared pathway covers (or per hidden area, for a direct rule), :func:`assign` gives every
weighted projection its rule, options and the population pairs that carry its error,
:func:`check` checks every pathway against its rule (known rule, valid options, connected ends, an
op the rule supports) and :func:`used_by` lists the rules a circuit uses. The declarations
themselves (:mod:`biofa.circuit`) know nothing of rules.

A layer-wise pathway ``upper -> lower`` (areas or populations) covers the projections from
``lower``'s populations to ``upper``'s; it gives them its rule, and only the pairs of populations
it names carry the error back: ``c.feedback("v2", "v1.pyr", rule=...)`` sends ``v2``'s error to
``v1.pyr`` alone, even through an all-to-all projection ``v1 -> v2`` (its ``v1.pv`` columns
receive none; their weights still learn from the error at ``v2``). A projection covered by no
pathway learns by backprop; two pathways with different rules may not cover one projection.
"""

from __future__ import annotations

from biofa.circuit import Circuit, FeedbackPathway, Projection
from biofa.circuit.kind import WeightedKind
from biofa.circuit.wiring import pairs, split
from biofa.rules._base import DirectFeedbackRule, FeedbackRule
from biofa.rules.registry import get

__all__ = ["assign", "check", "resolve", "used_by"]


def _direct(rule: str) -> bool:
    return issubclass(get(rule), DirectFeedbackRule)


def _covers(circuit: Circuit, pw: FeedbackPathway, p: Projection) -> set[tuple[str, str]]:
    """The ``(target, source)`` population pairs of ``p`` that layer-wise pathway ``pw`` names."""
    if split(pw.upper)[0] != p.target_area or split(pw.lower)[0] != p.source_area:
        return set()
    return pairs(circuit, pw.lower, pw.upper) & pairs(circuit, p.source, p.target)


def resolve(circuit: Circuit) -> list[FeedbackPathway]:
    """The declared pathways plus those implied by ``circuit.feedback_everywhere``."""
    pathways = list(circuit.pathways)
    if circuit.everywhere is None:
        return pathways
    rule, options = circuit.everywhere
    if _direct(rule):
        readout = circuit.readout_area.name
        declared = {(p.upper, p.lower) for p in pathways}
        pairs_ = [(readout, a.name) for a in circuit.areas.values() if a.role == "hidden"]
        return pathways + [
            FeedbackPathway(u, lo, rule, dict(options)) for u, lo in pairs_
            if (u, lo) not in declared
        ]  # fmt: skip
    layerwise = [pw for pw in pathways if not _direct(pw.rule)]
    declared = {(pw.upper, pw.lower) for pw in pathways}
    for p in circuit.weighted_projections():
        if (p.target, p.source) in declared or any(_covers(circuit, pw, p) for pw in layerwise):
            continue
        pathways.append(FeedbackPathway(p.target, p.source, rule, dict(options)))
    return pathways


def assign(circuit: Circuit) -> dict[str, tuple[str, tuple, frozenset | None]]:
    """Projection name -> ``(rule, options as sorted items, allowed)`` for every weighted
    projection: ``allowed`` is the set of ``(target, source)`` population pairs whose error goes
    back (``None``: all of them)."""
    layerwise = [pw for pw in resolve(circuit) if not _direct(pw.rule)]
    out: dict[str, tuple[str, tuple, frozenset | None]] = {}
    for p in circuit.weighted_projections():
        covering = [(pw, c) for pw in layerwise if (c := _covers(circuit, pw, p))]
        if not covering:
            out[p.name] = ("backprop", (), None)
            continue
        rules = {(pw.rule, tuple(sorted(pw.options.items()))) for pw, _ in covering}
        if len(rules) > 1:
            names = ", ".join(sorted(f"{pw.name} ({pw.rule})" for pw, _ in covering))
            raise ValueError(
                f"projection {p.name}: feedback pathways {names} give it different rules or "
                "options (a projection has one feedback rule)"
            )
        allowed = set().union(*(c for _, c in covering))
        rule, options = rules.pop()
        full = allowed == pairs(circuit, p.source, p.target)
        out[p.name] = (rule, options, None if full else frozenset(allowed))
    return out


def used_by(circuit: Circuit) -> list[str]:
    """The names of the rules ``circuit``'s pathways use, sorted (``["backprop"]`` for none)."""
    return sorted({p.rule for p in resolve(circuit)}) or ["backprop"]


def check(circuit: Circuit) -> None:
    """Check every pathway against its rule; ``ValueError`` naming the pathway otherwise."""
    readout = circuit.readout_area.name
    for pw in resolve(circuit):
        where = f"feedback pathway {pw.name!r}"
        for end in (pw.upper, pw.lower):
            circuit._need(split(end)[0], where)
        rule = get(pw.rule)  # ValueError listing the rules if unknown
        rule.check_options(pw.options, where)
        if issubclass(rule, DirectFeedbackRule):
            if pw.upper != readout:
                raise ValueError(
                    f"{where}: rule {pw.rule!r} broadcasts the readout's error, so "
                    f"its upper end must be the readout {readout!r}"
                )
            if circuit.areas[split(pw.lower)[0]].role != "hidden":
                raise ValueError(f"{where}: rule {pw.rule!r} delivers errors to hidden areas only")
            continue
        if not issubclass(rule, FeedbackRule):
            raise ValueError(f"{where}: {pw.rule!r} is neither a layer-wise nor a direct rule")
        covered = [p for p in circuit.projections if _covers(circuit, pw, p)]
        if not covered:
            raise ValueError(
                f"{where}: areas {pw.lower!r} and {pw.upper!r} are not connected "
                f"(no projection {pw.lower}->{pw.upper})"
            )
        for projection in covered:
            if not isinstance(projection.kind, WeightedKind):
                raise ValueError(
                    f"{where}: {projection.name!r} is an {projection.op} projection without "
                    "weights; its error passes unchanged, so it takes no feedback pathway"
                )
            if not issubclass(projection.kind.op_type, rule.supports):
                supported = ", ".join(t.__name__ for t in rule.supports)
                raise ValueError(
                    f"{where}: rule {pw.rule!r} does not support {projection.op} "
                    f"projections (it supports {supported}): projection {projection.name}"
                )
    assign(circuit)
