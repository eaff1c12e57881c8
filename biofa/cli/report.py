r"""A reproduction's report: measured mean and 95 % confidence interval per row beside the
published value, and a verdict per claim; rendered as Markdown and JSON.

The interval is Student's t over seeds: :math:`\bar x \pm t_{0.975,\,n-1}\, s/\sqrt n` with
:math:`s` the sample standard deviation of the ``n`` seeds' final test accuracies (none for
``n = 1``). A run that diverged (its file's status says so) counts at chance accuracy -- a
diverged network predicts one class -- and the row says how many did; a run whose file is missing
is left out and counted.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from biofa.cli.claims import Relation, holds, parse_claims
from biofa.cli.published import Scale, Table

__all__ = ["RowSummary", "RunResult", "mean_ci", "render_markdown", "summarize", "t_975"]

# t_{0.975, df} for df = 1 .. 30 (two-sided 95 %)
# fmt: off
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
# fmt: on


def t_975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (a table to 30, then the
    Cornish-Fisher expansion, accurate to 1e-4 there)."""
    if df < 1:
        raise ValueError(f"t quantile needs df >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> tuple[float, float | None]:
    """``(mean, half-width of the 95 % t-interval)``; the half-width is ``None`` for one value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    return mean, t_975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


@dataclass
class RunResult:
    """What one run's file says: final test accuracy (percent; ``None`` if it diverged or is
    missing), status, final error/feedback angles (degrees, mean over projections) and the
    error-angle curve."""

    row: str
    seed: int
    path: str
    status: str
    accuracy: float | None = None
    validation: float | None = None
    error_angle: float | None = None
    feedback_angle: float | None = None
    wall_time: float | None = None
    steps: list[int] = field(default_factory=list)
    error_curve: list[float] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.status.startswith("diverged")


@dataclass
class RowSummary:
    """One row of the report (accuracies in percent)."""

    label: str
    published: float | None
    published_accuracy: float | None
    accuracies: list[float]
    mean: float | None
    ci: float | None
    n: int
    diverged: int
    missing: int
    error_angle: float | None
    feedback_angle: float | None
    within_tolerance: bool | None = None


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.fmean(kept) if kept else None


def summarize(table: Table, scale: Scale, results: list[RunResult], chance: float) -> dict:
    """Rows, claim verdicts and runs of a report (a JSON-able dict)."""
    rows = []
    chosen = [r for r in table.rows if not scale.rows or r.label in scale.rows]
    for row in chosen:
        mine = [r for r in results if r.row == row.label]
        present = [r for r in mine if r.status != "missing"]
        accuracies = [chance if r.diverged else r.accuracy for r in present if r.diverged or
                      r.accuracy is not None]  # fmt: skip
        mean, ci = mean_ci(accuracies) if accuracies else (None, None)
        pub_acc = None if row.published is None else table.accuracy(row.published)
        within = None
        if scale.tolerance is not None and mean is not None and pub_acc is not None:
            within = abs(mean - pub_acc) <= scale.tolerance
        rows.append(RowSummary(
            row.label, row.published, pub_acc, accuracies, mean, ci, len(accuracies),
            sum(r.diverged for r in present), len(mine) - len(present),
            _mean([r.error_angle for r in present]), _mean([r.feedback_angle for r in present]),
            within,
        ))  # fmt: skip
    means = {r.label: r.mean for r in rows}
    published = {r.label: r.published_accuracy for r in rows}
    claims = []
    for claim in table.claims:
        for relation in parse_claims(claim):
            if relation.left in means and relation.right in means:
                claims.append(_verdict(relation, means, published, scale))
    return {"rows": [asdict(r) for r in rows], "claims": claims,
            "runs": [asdict(r) for r in results]}  # fmt: skip


def _verdict(relation: Relation, means: dict, published: dict, scale: Scale) -> dict:
    pair = (relation.left, relation.right)
    measured = None
    if all(means[k] is not None for k in pair):
        measured = holds(relation, means, scale.approx, scale.gap)
    in_paper = None
    if all(published[k] is not None for k in pair):
        in_paper = holds(relation, published, scale.approx, scale.gap)
    delta = None if measured is None else means[pair[0]] - means[pair[1]]
    return {"claim": relation.claim, "relation": str(relation), "difference": delta,
            "reproduced": measured, "holds_in_published": in_paper}  # fmt: skip


def _fmt(value: float | None, ci: float | None = None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if ci is None else f"{value:.2f} ± {ci:.2f}"


def render_markdown(table: Table, scale_name: str, scale: Scale, report: dict, header: dict) -> str:
    """The report as Markdown: what ran, the table, the claims."""
    metric = "error" if table.metric == "error" else "accuracy"
    lines = [f"### {table.title} — scale `{scale_name}`", ""]
    lines.append(f"Published: {table.source}.")
    if scale.note:
        lines.append(f"This scale: {scale.note}")
    lines.append(
        f"Ran {header['runs']} runs ({header['seeds']} seeds per row) on {header['hardware']}, "
        f"{header['date']}; `{header['command']}`."
    )
    lines += [
        "",
        f"| | published {metric} (%) | biofa {metric} (%), mean ± 95 % CI | n | "
        "diverged | final error angle (°) | final feedback angle (°) |"
        + (" within ±tol |" if scale.tolerance is not None else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if scale.tolerance is not None else ""),
    ]
    for r in report["rows"]:
        measured = r["mean"] if r["mean"] is None or table.metric == "accuracy" else 100 - r["mean"]
        published = "not found" if r["published"] is None else f"{r['published']:.2f}"
        cells = [r["label"], published, _fmt(measured, r["ci"]), str(r["n"]),
                 str(r["diverged"]) + (f" (+{r['missing']} missing)" if r["missing"] else ""),
                 _fmt(r["error_angle"]), _fmt(r["feedback_angle"])]  # fmt: skip
        if scale.tolerance is not None:
            w = r["within_tolerance"]
            cells.append("—" if w is None else ("yes" if w else "no"))
        lines.append("| " + " | ".join(cells) + " |")
    if report["claims"]:
        lines += ["", f"Claims (in accuracy; `~`: within {scale.approx:g} points, `>=`: not "
                  f"worse by more than {scale.approx:g}, `>>`: at least {scale.gap:g} better):",
                  ""]  # fmt: skip
        for c in report["claims"]:
            verdict = {True: "**reproduced**", False: "**not reproduced**", None: "no data"}[
                c["reproduced"]
            ]
            diff = "" if c["difference"] is None else f" (difference {c['difference']:+.2f})"
            paper = {True: "", False: "; does not hold in the published numbers either",
                     None: ""}[c["holds_in_published"]]  # fmt: skip
            lines.append(f"- `{c['relation']}`{diff}: {verdict}{paper}")
    if table.notes:
        lines += ["", table.notes]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, stem: str, markdown: str, payload: dict) -> tuple[Path, Path]:
    """``stem.md`` and ``stem.json`` in ``out_dir``."""
    md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md.write_text(markdown)
    js.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return md, js
