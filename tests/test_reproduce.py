"""``python -m biofa.reproduce``: claims, statistics against an independent reference, the report,
and the smoke scale of every reproduction through the command line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from biofa.cli.claims import holds, parse_claims
from biofa.cli.published import Row, Scale, Table
from biofa.cli.report import RunResult, mean_ci, summarize, t_975
from biofa.cli.reproduce import available, collect, find_spec, set_arguments

ROOT = Path(__file__).resolve().parents[1]


def test_a_chain_claim_is_the_relations_between_neighbours():
    rel = [str(r) for r in parse_claims("BP ≈ uSF ≥ brSF ~ frSF ≫ FA, DFA")]
    assert rel == ["BP ~ uSF", "uSF >= brSF", "brSF ~ frSF", "frSF >> FA", "frSF >> DFA"]
    assert [str(r) for r in parse_claims("KP, WM > SS")] == ["KP > SS", "WM > SS"]
    with pytest.raises(ValueError, match="expected labels joined by"):
        parse_claims("BP FA")


@pytest.mark.parametrize(
    "op,a,b,expected",
    [("~", 90, 88.5, True), ("~", 90, 87.9, False), (">=", 88.1, 90, True), (">=", 87.9, 90, False),
     (">", 90.01, 90, True), (">", 90, 90, False), (">>", 90, 85, True), (">>", 90, 85.1, False)],
)  # fmt: skip
def test_relations_hold_as_documented(op, a, b, expected):
    (relation,) = parse_claims(f"a {op} b")
    assert holds(relation, {"a": a, "b": b}, approx=2.0, gap=5.0) is expected


def test_t_quantile_and_interval_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 4, 9, 29, 30, 31, 60, 200):
        assert t_975(df) == pytest.approx(float(stats.t.ppf(0.975, df)), abs=2e-4)
    values = [91.2, 90.4, 91.9]
    mean, half = mean_ci(values)
    lo, hi = stats.t.interval(0.95, 2, loc=mean, scale=stats.sem(values))
    assert mean == pytest.approx(sum(values) / 3) and half == pytest.approx((hi - lo) / 2, 1e-4)
    assert mean_ci([5.0]) == (5.0, None)


def _table(**scale):
    rows = [Row("A", 10.0, rule="a"), Row("B", 30.0, rule="b"), Row("C", None, rule="c")]
    return Table("t", "src", rows, metric="error", claims=["A >> B ~ C"],
                 scales={"s": Scale(seeds=2, **scale)})  # fmt: skip


def test_summary_counts_diverged_runs_at_chance_and_missing_ones_out():
    table = _table(tolerance=3.0)
    runs = [RunResult("A", 0, "a0", "complete", 91.0), RunResult("A", 1, "a1", "complete", 89.0),
            RunResult("B", 0, "b0", "diverged: loss not finite at step 3"),
            RunResult("B", 1, "b1", "complete", 70.0),
            RunResult("C", 0, "c0", "missing"),
            RunResult("C", 1, "c1", "complete", 12.0)]  # fmt: skip
    report = summarize(table, table.scales["s"], runs, chance=10.0)
    a, b, c = report["rows"]
    assert a["mean"] == 90.0 and a["published_accuracy"] == 90.0 and a["within_tolerance"]
    assert b["accuracies"] == [10.0, 70.0] and b["diverged"] == 1
    assert c["n"] == 1 and c["missing"] == 1 and c["within_tolerance"] is None
    claims = {c["relation"]: c for c in report["claims"]}
    assert claims["A >> B"]["reproduced"] and claims["A >> B"]["holds_in_published"]
    assert claims["B ~ C"]["reproduced"] is False and claims["B ~ C"]["holds_in_published"] is None


def test_tables_refuse_unknown_labels_and_scales_that_set_row_keys():
    with pytest.raises(ValueError, match="names 'D', which is not a row"):
        Table("t", "s", [Row("A", rule="a")], claims=["A > D"])
    with pytest.raises(ValueError, match="sets \\['rule'\\], which rows set"):
        Table("t", "s", [Row("A", rule="a")], scales={"x": Scale(set={"rule": "b"})})


def test_set_arguments_round_trip_through_the_spec_converter():
    from biofa.cli.convert import convert

    args = set_arguments({"milestones": (4, 6), "width": 0.5, "augment": True, "one": (3,)})
    assert args == ["milestones=4,6", "width=0.5", "augment=true", "one=3,"]
    assert convert("4,6", tuple[int, ...]) == (4, 6) and convert("3,", tuple[int, ...]) == (3,)


def test_every_reproduction_is_found_and_has_smoke_cpu_and_full_scales():
    from biofa.cli.reproduce import table_of
    from biofa.cli.spec import load_spec

    names = available()
    assert {"biotorch", "pfa", "akrout", "liao", "moskovitz"} <= set(names)
    for name in names:
        table = table_of(load_spec(find_spec(name)))
        assert {"smoke", "cpu", "full"} <= set(table.scales), name
        assert all(s.note for s in table.scales.values()), name


def _check_report(report: dict, folder: Path) -> None:
    n = len(report["rows"])
    assert len(list(folder.glob("*.nc"))) == n == len(report["runs"])
    assert all(r["n"] == 1 for r in report["rows"])
    for run in report["runs"]:  # the numbers are the files' numbers
        with xr.open_dataset(run["path"]) as ds:
            acc = float(ds.test_accuracy.squeeze().dropna("step")[-1])
        assert math.isclose(run["accuracy"], 100 * acc)


def test_smoke_scale_runs_through_the_command_line(tmp_path):
    command = [sys.executable, "-m", "biofa.reproduce", "biotorch", "--scale", "smoke",
               "--out", str(tmp_path)]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    _check_report(json.loads((tmp_path / "report.json").read_text()), tmp_path)
    assert "| published" in result.stdout and "Claims" in result.stdout
    assert (tmp_path / "report.md").read_text() in result.stdout
    # a second call trains nothing (every file is there with the same configuration)
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "runs to train" not in again.stderr


def test_smoke_scale_of_akrout_in_process(tmp_path):
    from biofa.reproduce import reproduce

    md, report = reproduce("akrout", "smoke", out=tmp_path)
    _check_report(report, tmp_path)
    assert md == tmp_path / "report.md" and (tmp_path / "angles.png").exists()
    assert [c["relation"] for c in report["claims"]] == [
        "KP ~ BP", "WM ~ BP", "KP ~ WM", "KP > FA", "WM > FA", "BP > FA"
    ]  # fmt: skip


def test_user_errors_are_one_line(tmp_path, capsys):
    from biofa.cli.reproduce import main

    for args, message in ((["nope"], "unknown reproduction 'nope'"),
                          (["biotorch", "--scale", "huge"], "--scale huge"),
                          (["biotorch", "--seeds", "9"], "--seeds 9")):  # fmt: skip
        assert main([*args, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("biofa: error: ") and message in err and err.count("\n") == 1


def test_collect_reads_a_run_that_diverged_at_its_first_record(tmp_path):
    """One record (``step`` of size 1) must stay a dimension: its angles are the run's last."""
    run = {"rule": ["usf"], "seed": [0]}
    angle = np.array([[[[60.0, 80.0]]]])  # rule, seed, step, projection
    ds = xr.Dataset(
        {
            "loss": (("rule", "seed", "step"), np.array([[[5e20]]])),
            "feedback_angle": (("rule", "seed", "step", "projection"), angle),
            "error_angle": (("rule", "seed", "step", "projection"), angle + 5),
        },
        coords={**run, "step": [50], "projection": ["a->b", "b->c"]},
        attrs={"status": "diverged: mean training loss 5e+20 at step 50"},
    )
    ds.to_netcdf(tmp_path / "run.nc")
    result = collect(tmp_path / "run.nc", "uSF-noBN", 0)
    assert result.diverged and result.accuracy is None
    assert result.feedback_angle == 70.0 and result.error_angle == 75.0
    assert result.steps == [50] and result.error_curve == [75.0]
