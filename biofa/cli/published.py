"""A published table as a spec file declares it: its rows (one configuration each, with the value
the paper reports), its claims, and the scales it can be run at.

A reproduction spec (``circuits/reproduce/*.py``) is an ordinary spec file -- ``circuit()``,
``train`` (the paper's recipe) -- plus ``table = Table(...)``; its ``sweep`` is
``table.sweep()``, every row times the seeds. ``python -m biofa.reproduce NAME --scale S`` runs
the rows at scale ``S`` and compares (:mod:`biofa.cli.reproduce`)::

    table = Table(
        title="CIFAR-10 ResNet-20, top-1 test error (%)",
        source="Sanfiz & Akrout (2021), BioTorch Benchmarks.md",
        metric="error",
        rows=[Row("BP", published=8.63, rule="backprop"),
              Row("DFA", published=45.94, rule="direct_feedback_alignment", lr=0.001)],
        claims=["BP >> DFA"],
        scales={"smoke": Scale(seeds=1, set={"data": "digits", "max_steps": 2}, note="..."),
                "full": Scale(seeds=1, note="the paper's recipe")},
    )
    sweep = table.sweep()

A row's keywords are sweep keys (``circuit()`` keywords or ``Train`` fields: a per-row learning
rate is ``lr=...``). ``published=None`` says the value could not be found; it is never made up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biofa.cli.claims import parse_claims
from biofa.cli.sweep import Grid

__all__ = ["METRICS", "Row", "Scale", "Table", "local_data"]

#: how a table reports: accuracy or error, in percent
METRICS = ("accuracy", "error")


@dataclass(frozen=True)
class Row:
    """One row: its ``label`` (used in claims), the ``published`` value (``None``: not found) and
    the sweep keys that make its configuration."""

    label: str
    published: float | None = None
    point: dict[str, Any] = field(default_factory=dict)

    def __init__(self, label: str, published: float | None = None, **point: Any):
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "published", published)
        object.__setattr__(self, "point", dict(point))


@dataclass(frozen=True)
class Scale:
    """How to run a table at one scale.

    ``seeds`` per row; ``set`` overrides (``circuit()`` keywords and ``Train`` fields, as
    ``--set`` would, never a row's own keys); ``note`` says in words what differs from the
    paper (printed with the table); ``approx`` is the largest difference (points of accuracy) a
    claim ``a ~ b`` allows, ``gap`` the smallest one ``a >> b`` needs; ``tolerance`` (only at
    the paper's own recipe) how far from the published value a row may land; ``rows``, when
    given, the labels of the rows run at this scale (the others, and the claims naming them, are
    left out).
    """

    seeds: int = 3
    set: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    approx: float = 2.0
    gap: float = 5.0
    tolerance: float | None = None
    rows: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """A published table (module docstring)."""

    title: str
    source: str
    rows: tuple[Row, ...]
    metric: str = "accuracy"
    claims: tuple[str, ...] = ()
    scales: Mapping[str, Scale] = field(default_factory=dict)
    notes: str = ""
    #: the data set's class count (a diverged run counts at chance, 100 / classes percent)
    classes: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(self.rows))
        object.__setattr__(self, "claims", tuple(self.claims))
        if self.metric not in METRICS:
            raise ValueError(f"Table.metric={self.metric!r} is not one of {', '.join(METRICS)}")
        labels = [r.label for r in self.rows]
        if len(set(labels)) != len(labels):
            raise ValueError(f"Table {self.title!r}: row labels must be unique, got {labels}")
        for claim in self.claims:  # every label a claim names must be a row
            for relation in parse_claims(claim):
                for label in (relation.left, relation.right):
                    if label not in labels:
                        raise ValueError(
                            f"Table {self.title!r}: claim {claim!r} names {label!r}, which is "
                            f"not a row ({', '.join(labels)})"
                        )
        for name, scale in self.scales.items():
            unknown = sorted(set(scale.rows) - set(labels))
            if unknown:
                raise ValueError(f"Table {self.title!r}: scale {name!r} names rows {unknown}")
            clash = sorted({k for r in self.rows for k in r.point} & set(scale.set))
            if clash:
                raise ValueError(
                    f"Table {self.title!r}: scale {name!r} sets {clash}, which rows set"
                )

    @property
    def max_seeds(self) -> int:
        return max((s.seeds for s in self.scales.values()), default=1)

    def points(self) -> list[tuple[Row, int]]:
        """``(row, seed)`` for every point of :meth:`sweep`, in its order."""
        return [(row, seed) for row in self.rows for seed in range(self.max_seeds)]

    def sweep(self) -> Grid:
        """Every row times seeds ``0 .. max_seeds - 1`` (rows slowest)."""
        return Grid({**row.point, "seed": seed} for row, seed in self.points())

    def accuracy(self, value: float) -> float:
        """A value in the table's metric (percent) as accuracy in percent."""
        return value if self.metric == "accuracy" else 100.0 - value


def local_data(filename: str, fallback: str) -> str:
    """A data set file of this project's machines, or ``fallback`` (a registered name).

    The first of ``$BIOFA_DATA_DIR/filename`` and ``shared/data/filename`` one, two or three
    folders above the repository that exists; else ``fallback`` (e.g. ``"cifar10"``, which
    torchvision downloads).
    """
    env = os.environ.get("BIOFA_DATA_DIR")
    candidates = [Path(env) / filename] if env else []
    root = Path(__file__).resolve().parents[2]
    candidates += [up / "shared" / "data" / filename for up in root.parents[:3]]
    return next((str(c) for c in candidates if c.is_file()), fallback)
