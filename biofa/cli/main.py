"""Command line: train the circuit a spec file declares, one netCDF file per run.

``python -m biofa.run SPEC [--set KEY=VALUE ...] [--sweep [--jobs N]] [--out DIR]`` (also
``python -m biofa`` and the ``biofa`` script). User errors (a missing spec, a bad key or value, an
unknown rule, an invalid circuit) print one line ``biofa: error: ...`` and exit with status 2; a
run whose loss diverged exits with status 1. ``--debug`` shows tracebacks instead.

From Python, :func:`run` does the same without the command-line handling.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from biofa._version import __version__
from biofa.cli import launch, provenance
from biofa.cli.spec import Point, Spec, load_spec, parse_overrides, run_points
from biofa.train import Diverged, batching_refusal, fit

__all__ = ["execute", "main", "run"]

log = logging.getLogger(__name__)

_EPILOG = """\
examples:
  python -m biofa.run circuits/ei_mlp.py
  python -m biofa.run circuits/ei_mlp.py --set rule=feedback_alignment epochs=2 lr=1e-3
  python -m biofa.run circuits/ei_cnn.py --sweep --jobs 4 --out runs/cnn_sweep
  python -m biofa.run --list-rules

A key given to --set is a keyword of the spec's circuit() or a field of Train; the spec's sweep
(sweep = grid(rule=[...], seed=range(3))) runs with --sweep, and --sweep --point I runs only its
point I (0-based; e.g. one SLURM array task per point, see --dry-run for the list).
"""


def execute(
    spec: Spec, point: Point, out_dir: Path, *, resume: bool = False, command: str = ""
) -> Path:
    """Train one run point with :func:`biofa.train.fit`; return the netCDF file written.

    Parameters
    ----------
    spec
        The loaded spec (its source and hash go into the file's attributes).
    point
        One of :func:`biofa.cli.spec.run_points`'s points (its circuit is built and validated).
    out_dir
        Directory of the output; the file is ``out_dir / f"{point.name}.nc"``.
    resume
        Continue from the run's checkpoint.
    command
        The command line, recorded as the ``command`` attribute when given.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    return fit(
        point.circuit,
        point.train,
        out=out_dir / f"{point.name}.nc",
        coords=dict(point.coords),
        run_config=provenance.run_config(spec, point),
        attrs=provenance.run_attrs(spec, point, command),
        resume=resume,
    )


def execute_batched(
    spec: Spec, points: list[Point], out_dir: Path, *, resume: bool = False, command: str = ""
) -> list[Path]:
    """Train points that differ only in their seed together, as one batched computation
    (:func:`biofa.train.fit` with ``seeds``); return their files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    first = points[0]
    return fit(
        first.circuit,
        first.train,
        out=[out_dir / f"{p.name}.nc" for p in points],
        coords=[dict(p.coords) for p in points],
        run_config=[provenance.run_config(spec, p) for p in points],
        attrs=[provenance.run_attrs(spec, p, command) for p in points],
        resume=resume,
        seeds=[p.train.seed for p in points],
    )


def run(
    spec: str | Path | Spec,
    overrides: Mapping[str, Any] | None = None,
    *,
    sweep: bool = False,
    out: str | Path | None = None,
    resume: bool = False,
) -> list[Path]:
    """Train a spec's run (or every point of its sweep) in this process.

    Parameters
    ----------
    spec
        A spec file, or a spec loaded by :func:`biofa.cli.spec.load_spec`.
    overrides
        ``key -> value`` as with ``--set`` (strings are converted, other values type-checked).
    sweep, out, resume
        As ``--sweep``, ``--out`` (default ``runs/<spec name>``) and ``--resume``.

    Returns
    -------
    list of Path
        The files written, in run order. Errors (including ``Diverged``) propagate.
    """
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    points = run_points(spec, dict(overrides or {}), sweep=sweep)
    out_dir = Path(out) if out is not None else Path("runs") / spec.name
    return [execute(spec, point, out_dir, resume=resume) for point in points]


def build_parser() -> argparse.ArgumentParser:
    """The ``argparse`` parser of the command line."""
    parser = argparse.ArgumentParser(
        prog="biofa",
        description="Train the circuit a biofa spec file declares; write one netCDF file per run.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("spec", nargs="?", metavar="SPEC", help="spec file: circuit(), train and optional sweep")
    add("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
        help="override a circuit() keyword or Train field (repeatable; --set a=1 b=2)")  # fmt: skip
    add("--sweep", action="store_true", help="run every point of the spec's sweep")
    add("--point", type=int, metavar="I", help="with --sweep: run only sweep point I (0-based)")
    add("--jobs", type=int, default=1, metavar="N",
        help="run sweep points in N parallel local processes (default 1); with --launcher "
             "slurm, at most N jobs at once")  # fmt: skip
    add("--launcher", choices=("local", "slurm"), default="local",
        help="where sweep points run: local processes (--jobs N) or SLURM jobs via submitit "
             "(biofa.cli.launch)")  # fmt: skip
    add("--batch-seeds", action="store_true",
        help="train sweep points that differ only in seed together, as one batched "
             "computation in one process (fit(..., seeds=...))")  # fmt: skip
    slurm = parser.add_argument_group("SLURM (--launcher slurm)")
    slurm.add_argument("--slurm-partition", default="", metavar="NAME")
    slurm.add_argument(
        "--slurm-time",
        type=int,
        default=60,
        metavar="MIN",
        help="time limit per point in minutes (default 60)",
    )
    slurm.add_argument("--slurm-gpus", type=int, default=0, metavar="N", help="GPUs per job")
    slurm.add_argument("--slurm-cpus", type=int, default=0, metavar="N", help="CPUs per job")
    slurm.add_argument("--slurm-mem", type=float, default=0.0, metavar="GB", help="memory per job")
    slurm.add_argument(
        "--slurm-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra sbatch option, e.g. account=abc (repeatable)",
    )
    slurm.add_argument(
        "--slurm-no-wait",
        action="store_true",
        help="submit and return (default: wait and report failed points)",
    )
    slurm.add_argument("--slurm-cluster", default=None, help=argparse.SUPPRESS)  # local/debug
    add("--out", metavar="DIR", help="output directory (default runs/<spec name>/)")
    add("--resume", action="store_true", help="continue each run from its checkpoint")
    add("--dry-run", action="store_true", help="check everything, list the runs, train nothing")
    add("--list-rules", action="store_true", help="list the feedback rules and exit")
    add("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    add("-q", "--quiet", action="store_true", help="print warnings and errors only")
    add("--version", action="version", version=f"biofa {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed them
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    rank = os.environ.get("RANK", "0")  # under torchrun only rank 0 talks (biofa.train.distributed)
    quiet = args.quiet or rank != "0"
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    args.quiet = quiet
    try:
        return _main(args, argv)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except (ValueError, TypeError, FileNotFoundError) as exc:
        if args.debug:
            raise
        _error(exc)
        return 2


def _main(args: argparse.Namespace, argv: list[str]) -> int:
    if args.list_rules:
        from biofa import rules

        names = rules.available()
        width = max(map(len, names), default=0)
        for name in names:
            print(f"{name:<{width}}  {rules.describe(name)}")
        return 0
    overrides = parse_overrides(args.set)
    if args.spec is None:
        raise ValueError("a SPEC file is required (or --list-rules); see --help")
    if args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: expected a positive number of processes")
    if args.point is not None and not args.sweep:
        raise ValueError("--point I selects a sweep point: add --sweep")
    spec = load_spec(args.spec)
    points = [(p.index or 0, p) for p in run_points(spec, overrides, sweep=args.sweep)]
    if args.point is not None:
        size = len(spec.sweep or ())
        if not 0 <= args.point < size:
            raise ValueError(f"--point {args.point}: the sweep has points 0 to {size - 1}")
        kept = [(i, p) for i, p in points if i == args.point]
        if not kept:
            raise ValueError(
                f"--point {args.point}: the --set selection keeps sweep points "
                f"{', '.join(str(i) for i, _ in points)}, not {args.point}"
            )
        points = kept
    if args.out and Path(args.out).suffix == ".nc":
        raise ValueError(
            f"--out {args.out}: --out is a directory; each run's file is named after its rule "
            f"and seed inside it (e.g. --out {Path(args.out).with_suffix('')})"
        )
    out_dir = Path(args.out) if args.out else Path("runs") / spec.name
    if args.dry_run:
        print(f"{len(points)} run(s) of {spec.name}:")
        for i, point in points:
            print(f"  {i}: {out_dir / point.name}.nc")
        return 0
    if args.batch_seeds and (args.launcher == "slurm" or args.jobs > 1):
        raise ValueError(
            "--batch-seeds trains each group of seeds in this process; it does not "
            "combine with --jobs N or --launcher slurm yet"
        )
    if args.launcher == "slurm" or (args.jobs > 1 and len(points) > 1):
        return _run_parallel(args, spec, points, out_dir)

    command = shlex.join(["python", "-m", "biofa.run", *argv])
    failed = 0
    for group in _units([p for _, p in points], args.batch_seeds):
        try:
            if len(group) == 1:
                paths = [execute(spec, group[0], out_dir, resume=args.resume, command=command)]
            else:
                log.info("%d seeds of %s as one batched run", len(group), group[0].name)
                paths = execute_batched(spec, group, out_dir, resume=args.resume, command=command)
        except Diverged as exc:
            if args.debug:
                raise
            _error(f"{group[0].name}: {exc}" if len(points) > 1 and len(group) == 1 else exc)
            failed += 1
            continue
        for path in paths:
            if not args.quiet:
                print(f"wrote {path}", flush=True)
    return 1 if failed else 0


def _units(points: list[Point], batch_seeds: bool) -> list[list[Point]]:
    """What each training call runs: every point alone, or (``--batch-seeds``) the points that
    differ only in their seed together -- unless seed-batching refuses their configuration."""
    if not batch_seeds:
        return [[p] for p in points]
    units: list[list[Point]] = []
    for group in group_points(points):
        why = batching_refusal(group[0].circuit, group[0].train) if len(group) > 1 else None
        if why is not None:
            log.warning("%s: %d seeds run one by one: %s", group[0].name, len(group), why)
        units += [group] if why is None else [[p] for p in group]
    return units


def group_points(points: list[Point]) -> list[list[Point]]:
    """Sweep points grouped by everything but the seed (order of first appearance): two points
    fall in one group when their ``circuit()`` keywords, ``Train`` without ``seed`` and other
    coordinates are equal."""
    groups: dict[str, list[Point]] = {}
    for point in points:
        key = repr(
            (
                sorted(point.circuit_kwargs.items(), key=lambda kv: kv[0]),
                point.train.replace(seed=0),
                sorted((k, v) for k, v in point.coords.items() if k != "seed"),
            )
        )
        groups.setdefault(key, []).append(point)
    return list(groups.values())


def _run_parallel(args: argparse.Namespace, spec: Spec, points, out_dir: Path) -> int:
    """Each point an independent ``biofa.run SPEC --sweep --point I`` (biofa.cli.launch)."""
    extra = ["--set", *args.set] if args.set else []
    extra += [flag for flag, on in (("--resume", args.resume), ("--debug", args.debug)) if on]
    options = launch.Options(
        launcher=args.launcher,
        jobs=args.jobs,
        quiet=args.quiet,
        extra_args=extra,
        slurm_cluster=args.slurm_cluster,
        slurm_partition=args.slurm_partition,
        slurm_time=args.slurm_time,
        slurm_gpus=args.slurm_gpus,
        slurm_cpus=args.slurm_cpus,
        slurm_mem_gb=args.slurm_mem,
        slurm_options=dict(parse_overrides(args.slurm_opt)),
        slurm_wait=not args.slurm_no_wait,
    )
    return launch.launch(spec, points, out_dir, options)


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    last = next((line for line in reversed(lines) if line), "(no output)")
    return last.removeprefix("biofa: error: ")


def _error(message: object) -> None:
    text = str(message) or type(message).__name__
    one_line = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    print(f"biofa: error: {one_line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
