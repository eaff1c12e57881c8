"""Command line: train the circuit a spec file declares, one netCDF file per run.

``python -m biofa.run SPEC [--set KEY=VALUE ...] [--sweep [--jobs N]] [--out DIR]`` (also
``python -m biofa`` and the ``biofa`` script; ``--help`` lists every option, the files a run
writes and what ``--resume`` needs). User errors (a missing spec, a bad key or value, an unknown
rule, an invalid circuit, an output that must not be replaced, a checkpoint of another
configuration) print one line ``biofa: error: ...`` and exit with status 2; a run whose loss
diverged exits with status 1; SIGINT/SIGTERM stop a run with its record and a checkpoint
written and exit with status 130/143. ``--debug`` shows tracebacks instead.

From Python, :func:`run` does the same without the command-line handling.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from biofa import _startup
from biofa.cli import launch, outputs, provenance
from biofa.cli.parser import build_parser
from biofa.cli.spec import Point, Spec, load_spec, parse_overrides, run_points
from biofa.train import Diverged, Interrupted, batching_refusal, fit, resolve_device
from biofa.train.interrupt import exit_status, raise_interrupted
from biofa.train.preflight import dry_run

__all__ = ["build_parser", "execute", "main", "run"]

log = logging.getLogger(__name__)


def execute(
    spec: Spec,
    point: Point,
    out_dir: Path,
    *,
    resume: bool = False,
    command: str = "",
    save_model: bool = True,
) -> Path:
    """Train one run point with :func:`biofa.train.fit`; return the netCDF file written.

    Parameters
    ----------
    spec
        The loaded spec (its source and hash go into the file's attributes).
    point
        One of :func:`biofa.cli.spec.run_points`'s points (its circuit is built and validated).
    out_dir
        Directory of the output; the file is ``out_dir / f"{point.name}.nc"``, held by a
        :class:`~biofa.cli.outputs.RunLock` while it trains.
    resume
        Continue from the run's checkpoint.
    command
        The command line, recorded as the ``command`` attribute when given.
    save_model
        Keep the final model beside the file (``<run>.model.pt``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{point.name}.nc"
    with _locks([out]):
        return fit(
            point.circuit,
            point.train,
            out=out,
            coords=dict(point.coords),
            run_config=provenance.run_config(spec, point),
            attrs=provenance.run_attrs(spec, point, command),
            resume=resume,
            save_model=save_model,
        )


def execute_batched(
    spec: Spec,
    points: list[Point],
    out_dir: Path,
    *,
    resume: bool = False,
    command: str = "",
    save_model: bool = True,
) -> list[Path]:
    """Train points that differ only in their seed together, as one batched computation
    (:func:`biofa.train.fit` with ``seeds``); return their files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    first = points[0]
    outs = [out_dir / f"{p.name}.nc" for p in points]
    with _locks(outs):
        return fit(
            first.circuit,
            first.train,
            out=outs,
            coords=[dict(p.coords) for p in points],
            run_config=[provenance.run_config(spec, p) for p in points],
            attrs=[provenance.run_attrs(spec, p, command) for p in points],
            resume=resume,
            seeds=[p.train.seed for p in points],
            save_model=save_model,
        )


def _locks(outs: list[Path]) -> contextlib.ExitStack:
    """The run locks of ``outs`` (none on ranks other than 0 of a ``torchrun``)."""
    stack = contextlib.ExitStack()
    try:
        if os.environ.get("RANK", "0") == "0":
            for out in outs:
                stack.enter_context(outputs.RunLock(out))
    except BaseException:
        stack.close()
        raise
    return stack


def run(
    spec: str | Path | Spec,
    overrides: Mapping[str, Any] | None = None,
    *,
    sweep: bool = False,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Train a spec's run (or every point of its sweep) in this process.

    Parameters
    ----------
    spec
        A spec file, or a spec loaded by :func:`biofa.cli.spec.load_spec`.
    overrides
        ``key -> value`` as with ``--set`` (strings are converted, other values type-checked).
    sweep, out, resume, overwrite
        As ``--sweep``, ``--out`` (default ``runs/<spec name>``), ``--resume`` and
        ``--overwrite`` (see :mod:`biofa.cli.outputs`).

    Returns
    -------
    list of Path
        The files written (or, with ``resume``, found complete), in run order. Errors (including
        ``Diverged`` and ``Interrupted``) propagate.
    """
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    points = run_points(spec, dict(overrides or {}), sweep=sweep)
    out_dir = Path(out) if out is not None else Path("runs") / spec.name
    outputs.check_out_dir(out_dir)
    actions = outputs.plan(spec, points, out_dir, resume=resume, overwrite=overwrite)
    return [
        a.path if a.kind == "skip" else execute(spec, a.point, out_dir, resume=resume)
        for a in actions
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    _startup.release()  # from here on interruptions are handled below
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed them
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    rank = os.environ.get("RANK", "0")  # under torchrun only rank 0 talks (biofa.train.distributed)
    quiet = args.quiet or rank != "0"
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    args.quiet = quiet
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None
    if main_thread:  # SIGTERM during start-up: one line, like Ctrl-C (fit handles it itself)
        signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        return _main(args, argv)
    except Interrupted as exc:  # a run stopped by a signal, or start-up interrupted
        _error(exc)
        return exit_status(exc.signum)
    except KeyboardInterrupt:
        _error("interrupted by SIGINT")
        return exit_status(signal.SIGINT)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        if args.debug:
            raise
        _error(exc)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback, unless --debug
        if args.debug:
            raise
        _error(_unexpected(exc))
        return 1
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _unexpected(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    if isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate" in text:
        why = f"{type(exc).__name__}: {text[:200]}"
        return f"out of memory ({why}); make the circuit or batch_size smaller"
    return f"{type(exc).__name__}: {text[:300]} (run with --debug for the traceback)"


def _main(args: argparse.Namespace, argv: list[str]) -> int:
    if args.list_rules:
        return _list_rules()
    overrides = parse_overrides(args.set)
    if args.spec is None:
        raise ValueError("a SPEC file is required (or --list-rules); see --help")
    if args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: expected a positive number of processes")
    if args.point is not None and not args.sweep:
        raise ValueError("--point I selects a sweep point: add --sweep")
    if args.out and Path(args.out).suffix == ".nc":
        raise ValueError(
            f"--out {args.out}: --out is a directory; each run's file is named after its rule "
            f"and seed inside it (e.g. --out {Path(args.out).with_suffix('')})"
        )
    spec = load_spec(args.spec)
    points = [(p.index or 0, p) for p in run_points(spec, overrides, sweep=args.sweep)]
    if args.point is not None:
        points = _select_points(args.point, points, len(spec.sweep or ()))
    out_dir = Path(args.out) if args.out else Path("runs") / spec.name
    outputs.check_out_dir(out_dir, create=not args.dry_run)
    actions = outputs.plan(
        spec, [p for _, p in points], out_dir, resume=args.resume, overwrite=args.overwrite
    )
    if args.dry_run:
        return _dry_run(spec, points, actions)
    for action in actions:
        if action.kind == "skip":
            log.info("%s is complete: nothing to resume", action.path)
        elif action.kind == "replace":
            log.info("%s: replacing this configuration's earlier file", action.path)
    todo = {id(a.point) for a in actions if a.kind != "skip"}
    points = [(i, p) for i, p in points if id(p) in todo]
    if args.launcher == "slurm" or (args.jobs > 1 and len(points) > 1):
        return _run_parallel(args, spec, points, out_dir)

    command = shlex.join(["python", "-m", "biofa.run", *argv])
    failed = 0
    options = dict(resume=args.resume, command=command, save_model=not args.no_model)
    for group in _units([p for _, p in points], args.batch_seeds):
        try:
            if len(group) == 1:
                paths = [execute(spec, group[0], out_dir, **options)]
            else:
                log.info("%d seeds of %s as one batched run", len(group), group[0].name)
                paths = execute_batched(spec, group, out_dir, **options)
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


def _select_points(text: str, points: list[tuple[int, Point]], size: int):
    """The points ``--point I[,J...]`` names, in sweep order."""
    try:
        wanted = {int(part) for part in text.split(",")}
    except ValueError:
        raise ValueError(f"--point {text}: expected a point number or numbers (3, 3,4,5)") from None
    if any(not 0 <= i < size for i in wanted):
        raise ValueError(f"--point {text}: the sweep has points 0 to {size - 1}")
    kept = [(i, p) for i, p in points if i in wanted]
    if len(kept) < len(wanted):
        missing = ", ".join(str(i) for i in sorted(wanted - {i for i, _ in kept}))
        raise ValueError(
            f"--point {text}: the --set selection keeps sweep points "
            f"{', '.join(str(i) for i, _ in points)}, not {missing}"
        )
    return kept


def _list_rules() -> int:
    from biofa import rules

    names = rules.available()
    width = max(map(len, names), default=0)
    for name in names:
        print(f"{name:<{width}}  {rules.describe(name)}")
        defaults = rules.get(name).defaults
        shown = ", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "none"
        print(f"{'':<{width}}  options: {shown}")
    return 0


def _dry_run(spec: Spec, points: list[tuple[int, Point]], actions) -> int:
    """Everything short of training, point by point (:func:`biofa.train.preflight.dry_run`)."""
    says = {"new": "new", "replace": "replaces its earlier file", "resume": "resumes from its "
            "checkpoint", "skip": "complete: skipped with --resume"}  # fmt: skip
    print(f"{len(points)} run(s) of {spec.name}:")
    checked: dict[str, str] = {}
    for (i, point), action in zip(points, actions, strict=True):
        extra = ", ".join(f"{k}={v!r}" for k, v in point.extra.items())
        print(f"  {i}: {action.path} ({says[action.kind]}{'; ' + extra if extra else ''})")
        key = repr((point.circuit_kwargs, point.train.replace(seed=0)))  # seeds: checked once
        if key not in checked:
            checked[key] = dry_run(point.circuit, point.train, resolve_device(point.train.device))
            print(f"     {checked[key]}")
    return 0


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
    """Each point an independent ``biofa.run SPEC --sweep --point I`` (biofa.cli.launch); with
    ``--batch-seeds`` each group of seeds one ``--point I,J,... --batch-seeds`` process."""
    extra = ["--set", *args.set] if args.set else []
    flags = (("--resume", args.resume), ("--debug", args.debug), ("--overwrite", args.overwrite),
             ("--no-model", args.no_model))  # fmt: skip
    extra += [flag for flag, on in flags if on]
    index = {id(p): i for i, p in points}
    units = [[(index[id(p)], p) for p in unit]
             for unit in _units([p for _, p in points], args.batch_seeds)]  # fmt: skip
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
    return launch.launch(spec, units, out_dir, options)


def _error(message: object) -> None:
    text = str(message) or type(message).__name__
    one_line = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    print(f"biofa: error: {one_line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
