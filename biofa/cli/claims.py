"""The claims of a published table, and whether measured numbers reproduce them.

A claim is a chain over row labels, read in *accuracy* (whatever the table's metric):
``"BP ~ uSF >= brSF ~ frSF >> FA, DFA"`` (``≈ ≥ ≫`` may be written for ``~ >= >>``) is the
relations between neighbours, and a comma group relates every member to its neighbours:
``BP ~ uSF``, ``uSF >= brSF``, ``brSF ~ frSF``, ``frSF >> FA``, ``frSF >> DFA``. With mean
accuracies ``m`` (percent) and a scale's ``approx`` and ``gap`` (points):

==========  ==============================  =====================================
relation    holds when                      reads
==========  ==============================  =====================================
``a ~ b``   ``|m_a - m_b| <= approx``        about equal
``a >= b``  ``m_a >= m_b - approx``          not worse (within ``approx``)
``a > b``   ``m_a > m_b``                    better
``a >> b``  ``m_a - m_b >= gap``             much better
==========  ==============================  =====================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["RELATIONS", "Relation", "holds", "parse_claims"]

RELATIONS = ("~", ">=", ">", ">>")
_UNICODE = {"≈": "~", "≥": ">=", "≫": ">>"}
_TOKEN = re.compile(r"\s*(>>|>=|>|~|,)\s*")


@dataclass(frozen=True)
class Relation:
    """``left op right`` between two row labels; ``claim`` is the chain it came from."""

    left: str
    op: str
    right: str
    claim: str

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


def parse_claims(claim: str) -> list[Relation]:
    """The pairwise relations of a chain (module docstring); ``ValueError`` for a malformed one."""
    text = claim
    for u, a in _UNICODE.items():
        text = text.replace(u, f" {a} ")
    parts = [p for p in _TOKEN.split(text) if p is not None]
    groups: list[list[str]] = [[]]
    ops: list[str] = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if part == ",":
            continue
        if part in RELATIONS:
            ops.append(part)
            groups.append([])
        else:
            groups[-1].append(part)
    if not ops or any(not g for g in groups):
        raise ValueError(
            f"claim {claim!r}: expected labels joined by ~, >=, >, >> (or ≈, ≥, ≫), "
            "e.g. 'BP ~ uSF >> FA, DFA'"
        )
    return [
        Relation(a, op, b, claim)
        for op, left, right in zip(ops, groups, groups[1:])
        for a in left
        for b in right
    ]


def holds(relation: Relation, mean: dict[str, float], approx: float, gap: float) -> bool:
    """Whether ``relation`` holds for mean accuracies ``mean`` (percent)."""
    a, b = mean[relation.left], mean[relation.right]
    if relation.op == "~":
        return abs(a - b) <= approx
    if relation.op == ">=":
        return a >= b - approx
    if relation.op == ">":
        return a > b
    return a - b >= gap
