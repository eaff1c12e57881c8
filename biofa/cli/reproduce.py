"""``python -m biofa.reproduce NAME [--scale smoke|cpu|full] [--jobs N]``: run a published table
and compare.

``NAME`` is a reproduction spec, ``circuits/reproduce/NAME.py`` (or a path to one): an ordinary
spec file whose ``table`` (:class:`biofa.cli.published.Table`) lists the paper's rows, claims and
scales, and whose ``sweep`` is ``table.sweep()``. The command trains every row x seed of the
scale through the normal training path (:func:`biofa.cli.main.execute`, or ``--jobs N`` local
processes: one netCDF file per run in ``OUT``), then prints and writes ``OUT/report.md`` and
``OUT/report.json``: the measured mean +- 95 % CI beside the published value and a verdict per
claim (:mod:`biofa.cli.report`), and ``OUT/angles.png`` (error-angle curves) when matplotlib is
installed. A run whose file is already there with the same configuration is not trained again,
so an interrupted command continues where it stopped; ``--report-only`` trains nothing.

Scales: ``smoke`` (seconds; the test suite runs it), ``cpu`` (a stated subset and schedule that
fits a 2-core CPU in an hour), ``full`` (the paper's recipe; a GPU). Every number in the report
comes from the run files; none is typed in.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from biofa.cli import launch, provenance
from biofa.cli.main import _error, execute
from biofa.cli.published import Scale, Table
from biofa.cli.report import RunResult, render_markdown, summarize, write
from biofa.cli.spec import Point, Spec, load_spec, run_points
from biofa.train import Diverged
from biofa.train.provenance import device_name

__all__ = ["find_spec", "main", "reproduce"]

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]  # the repository (circuits/ lives there)


def find_spec(name: str) -> Path:
    """``NAME`` -> ``circuits/reproduce/NAME.py`` (in the working directory, then the
    repository), or ``NAME`` itself when it is a path."""
    if name.endswith(".py") or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"reproduction spec not found: {path}")
        return path
    for base in (Path.cwd(), ROOT):
        path = base / "circuits" / "reproduce" / f"{name}.py"
        if path.is_file():
            return path
    raise ValueError(f"unknown reproduction {name!r}; available: {', '.join(available())}")


def available() -> list[str]:
    """The reproductions in the repository's ``circuits/reproduce/``."""
    folder = ROOT / "circuits" / "reproduce"
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def table_of(spec: Spec) -> Table:
    table = getattr(sys.modules[spec.circuit_fn.__module__], "table", None)
    if not isinstance(table, Table):
        raise ValueError(f"{spec.path}: a reproduction spec defines `table = Table(...)`")
    if spec.sweep is None or len(spec.sweep) != len(table.points()):
        raise ValueError(f"{spec.path}: its sweep must be `sweep = table.sweep()`")
    return table


def set_arguments(overrides: dict[str, Any]) -> list[str]:
    """``--set`` items a child ``biofa.run`` converts back to ``overrides``."""

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (tuple, list)):
            return ",".join(text(v) for v in value) + ("," if len(value) == 1 else "")
        return repr(value) if isinstance(value, float) else str(value)

    return [f"{key}={text(value)}" for key, value in overrides.items()]


def _done(path: Path, spec: Spec, point: Point) -> bool:
    """Whether ``path`` holds a finished run of exactly this configuration."""
    if not path.exists():
        return False
    try:
        with xr.open_dataset(path) as ds:
            status = str(ds.attrs.get("status", ""))
            stored = json.loads(str(ds["run_config"].values.reshape(-1)[0]))
    except (OSError, KeyError, ValueError):
        return False
    wanted = provenance.jsonable(provenance.run_config(spec, point))
    same = all(stored.get(k) == wanted[k] for k in ("circuit", "train"))
    return same and (status == "complete" or status.startswith("diverged"))


_KEPT = ("step", "projection")  # dims a run file's metrics keep, however short


def _last(da: xr.DataArray) -> float | None:
    """The last recorded value of a per-run variable, or ``None``."""
    values = da.values.reshape(-1)
    values = values[~(values != values)]  # drop NaN
    return float(values[-1]) if len(values) else None


def collect(path: Path, row: str, seed: int) -> RunResult:
    """What the run file ``path`` says (``status="missing"`` when there is none)."""
    if not path.exists():
        return RunResult(row, seed, str(path), "missing")
    with xr.open_dataset(path) as ds:
        # the run's coordinates only: a run that diverged at its first record has one step
        ds = ds.squeeze([d for d, n in ds.sizes.items() if n == 1 and d not in _KEPT], drop=True)
        result = RunResult(row, seed, str(path), str(ds.attrs.get("status", "")))
        if "test_accuracy" in ds and not result.diverged:
            acc = _last(ds["test_accuracy"])
            result.accuracy = None if acc is None else 100 * acc
        if "validation_accuracy" in ds:
            val = _last(ds["validation_accuracy"])
            result.validation = None if val is None else 100 * val
        if "wall_time" in ds:
            result.wall_time = _last(ds["wall_time"])
        for name in ("error_angle", "feedback_angle"):
            if name in ds and "projection" in ds[name].dims:
                curve = ds[name].mean("projection", skipna=True).dropna("step")
                if curve.size:
                    setattr(result, name, float(curve.values[-1]))
                    if name == "error_angle":
                        result.steps = [int(s) for s in curve.step.values]
                        result.error_curve = [float(v) for v in curve.values]
    return result


def hardware() -> str:
    """The device the runs trained on, in words."""
    if torch.cuda.is_available():
        return device_name(torch.device("cuda", 0))
    return device_name(torch.device("cpu"))[:-1] + ", CPU)"


def _train(spec, todo, out_dir: Path, scale: Scale, jobs: int, command: str) -> None:
    if jobs > 1 and len(todo) > 1:
        options = launch.Options(jobs=jobs, quiet=True, extra_args=["--set",
                                 *set_arguments(dict(scale.set))] if scale.set else [])  # fmt: skip
        # one process per point; failures are reported, the files are read below
        launch.launch(spec, [[pair] for pair in todo], out_dir, options)
        return
    for i, (_, point) in enumerate(todo):
        log.info("[%d/%d] %s", i + 1, len(todo), point.name)
        try:
            execute(spec, point, out_dir, command=command)
        except Diverged as exc:
            _error(f"{point.name}: {exc}")


def reproduce(
    name: str, scale_name: str = "cpu", *, jobs: int = 1, out: str | Path | None = None,
    seeds: int | None = None, report_only: bool = False, command: str = "",
) -> tuple[Path, dict]:  # fmt: skip
    """Run (unless ``report_only``) and report the table ``name`` at ``scale_name``; return the
    Markdown report's path and the report."""
    spec = load_spec(find_spec(name))
    table = table_of(spec)
    if scale_name not in table.scales:
        raise ValueError(f"--scale {scale_name}: {spec.name} has scales {', '.join(table.scales)}")
    scale = table.scales[scale_name]
    n_seeds = seeds or scale.seeds
    if not 1 <= n_seeds <= table.max_seeds:
        raise ValueError(f"--seeds {n_seeds}: {spec.name} has seeds 0..{table.max_seeds - 1}")
    out_dir = Path(out) if out is not None else Path("runs") / "reproduce" / spec.name / scale_name
    out_dir.mkdir(parents=True, exist_ok=True)
    points = run_points(spec, dict(scale.set), sweep=True)
    chosen = [(i, p, row, seed) for i, (p, (row, seed)) in enumerate(zip(points, table.points()))
              if seed < n_seeds and (not scale.rows or row.label in scale.rows)]  # fmt: skip
    todo = [(i, p) for i, p, _, _ in chosen if not _done(out_dir / f"{p.name}.nc", spec, p)]
    t0 = time.perf_counter()
    if todo and not report_only:
        log.info("%s, scale %s: %d runs to train (%d done) in %s", spec.name, scale_name,
                 len(todo), len(chosen) - len(todo), out_dir)  # fmt: skip
        _train(spec, todo, out_dir, scale, jobs, command)
    results = [collect(out_dir / f"{p.name}.nc", row.label, seed) for _, p, row, seed in chosen]
    report = summarize(table, scale, results, 100.0 / table.classes)
    header = {
        "runs": len(chosen), "seeds": n_seeds, "hardware": hardware(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": command or f"python -m biofa.reproduce {spec.name} --scale {scale_name}",
        "elapsed_s": time.perf_counter() - t0,
        "train_s": sum(r.wall_time or 0.0 for r in results),
    }  # fmt: skip
    markdown = render_markdown(table, scale_name, scale, report, header)
    payload = {"table": table.title, "source": table.source, "spec": spec.name,
               "scale": scale_name, "note": scale.note, "set": dict(scale.set),
               "header": header, **report}  # fmt: skip
    md, _ = write(out_dir, "report", markdown, payload)
    _figure(report, out_dir / "angles.png", f"{table.title} ({scale_name})")
    return md, payload


def _figure(report: dict, path: Path, title: str) -> None:
    """Error angle (mean over projections and seeds) against step, one line per row."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=110)
    for row in report["rows"]:
        runs = [r for r in report["runs"] if r["row"] == row["label"] and r["error_curve"]]
        if not runs:
            continue
        length = min(len(r["error_curve"]) for r in runs)
        mean = [sum(r["error_curve"][i] for r in runs) / len(runs) for i in range(length)]
        ax.plot(runs[0]["steps"][:length], mean, label=row["label"])
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("error angle to backprop (°)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m biofa.reproduce",
        description="Run a published table's rows x seeds and compare with the paper.",
    )
    p.add_argument("name", nargs="?", help="circuits/reproduce/NAME.py (or a path)")
    p.add_argument("--scale", default="cpu", help="smoke, cpu or full (default cpu)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel local processes")
    p.add_argument("--seeds", type=int, metavar="N", help="seeds per row (default: the scale's)")
    p.add_argument("--out", metavar="DIR", help="default runs/reproduce/NAME/SCALE")
    p.add_argument("--report-only", action="store_true", help="train nothing; report the files")
    p.add_argument("--list", action="store_true", help="list the reproductions and exit")
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.list:
            for name in available():
                print(name)
            return 0
        if not args.name:
            raise ValueError("a reproduction NAME is required (or --list); see --help")
        if args.jobs < 1:
            raise ValueError(f"--jobs {args.jobs}: expected a positive number of processes")
        command = shlex.join(["python", "-m", "biofa.reproduce", *argv])
        md, _ = reproduce(args.name, args.scale, jobs=args.jobs, out=args.out, seeds=args.seeds,
                          report_only=args.report_only, command=command)  # fmt: skip
    except (ValueError, TypeError, FileNotFoundError) as exc:
        if args.debug:
            raise
        _error(exc)
        return 2
    print(md.read_text(), end="")
    print(f"(written to {md} and {md.with_suffix('.json')})")
    return 0
