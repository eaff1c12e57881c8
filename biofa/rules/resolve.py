"""A circuit's feedback pathways as its rules see them: expanded, checked, listed.

:func:`resolve` expands ``feedback_everywhere`` into one pathway per weighted projection (or per
hidden area, for a direct rule), :func:`check` checks every pathway against its rule (known rule,
valid options, connected areas, an op the rule supports) and :func:`used_by` lists the rules a
circuit uses. The declarations themselves (:mod:`biofa.circuit`) know nothing of rules.
"""

from __future__ import annotations

from biofa.circuit import Circuit, FeedbackPathway
from biofa.circuit.kind import WeightedKind
from biofa.rules._base import DirectFeedbackRule, FeedbackRule
from biofa.rules.registry import get

__all__ = ["check", "resolve", "used_by"]


def resolve(circuit: Circuit) -> list[FeedbackPathway]:
    """The declared pathways plus those implied by ``circuit.feedback_everywhere``."""
    pathways = list(circuit.pathways)
    if circuit.everywhere is None:
        return pathways
    rule, options = circuit.everywhere
    declared = {(p.upper, p.lower) for p in pathways}
    if issubclass(get(rule), DirectFeedbackRule):
        readout = circuit.readout_area.name
        pairs = [(readout, a.name) for a in circuit.areas.values() if a.role == "hidden"]
    else:
        pairs = [(p.target, p.source) for p in circuit.weighted_projections()]
    pathways += [
        FeedbackPathway(u, lo, rule, dict(options)) for u, lo in pairs if (u, lo) not in declared
    ]
    return pathways


def used_by(circuit: Circuit) -> list[str]:
    """The names of the rules ``circuit``'s pathways use, sorted (``["backprop"]`` for none)."""
    return sorted({p.rule for p in resolve(circuit)}) or ["backprop"]


def check(circuit: Circuit) -> None:
    """Check every pathway against its rule; ``ValueError`` naming the pathway otherwise."""
    readout = circuit.readout_area.name
    for pw in resolve(circuit):
        where = f"feedback pathway {pw.name!r}"
        for end in (pw.upper, pw.lower):
            circuit._need(end, where)
        rule = get(pw.rule)  # ValueError listing the rules if unknown
        rule.check_options(pw.options, where)
        if issubclass(rule, DirectFeedbackRule):
            if pw.upper != readout:
                raise ValueError(
                    f"{where}: rule {pw.rule!r} broadcasts the readout's error, so "
                    f"its upper end must be the readout {readout!r}"
                )
            if circuit.areas[pw.lower].role != "hidden":
                raise ValueError(f"{where}: rule {pw.rule!r} delivers errors to hidden areas only")
            continue
        if not issubclass(rule, FeedbackRule):
            raise ValueError(f"{where}: {pw.rule!r} is neither a layer-wise nor a direct rule")
        projection = next(
            (p for p in circuit.projections if p.source == pw.lower and p.target == pw.upper), None
        )
        if projection is None:
            raise ValueError(
                f"{where}: areas {pw.lower!r} and {pw.upper!r} are not connected "
                f"(no projection {pw.lower}->{pw.upper})"
            )
        if not isinstance(projection.kind, WeightedKind):
            raise ValueError(
                f"{where}: {projection.name!r} is an {projection.op} projection without "
                "weights; its error passes unchanged, so it takes no feedback pathway"
            )
        if not issubclass(projection.kind.op_type, rule.supports):
            supported = ", ".join(t.__name__ for t in rule.supports)
            raise ValueError(
                f"{where}: rule {pw.rule!r} does not support {projection.op} "
                f"projections (it supports {supported})"
            )
