"""Sweep launchers: spread a sweep's points over local processes or a SLURM cluster.

Every sweep point is an independent ``python -m biofa.run SPEC --sweep --point I`` with its own
output file ``OUT/<run name>.nc`` and its own log; a failed point is reported (one line, its log's
last line) and the others run to the end. The command line picks the launcher::

    python -m biofa.run SPEC --sweep --jobs 4                       # local, 4 processes at a time
    python -m biofa.run SPEC --sweep --launcher slurm --slurm-partition gpu --slurm-gpus 1 \\
        --slurm-time 240 --jobs 32                                 # one SLURM job per point

* ``local`` (the default; ``--jobs N``): ``N`` child processes at a time on this machine, each
  with ``OMP_NUM_THREADS = cores // N`` unless set. Logs: ``OUT/<run name>.log``.
* ``slurm``: through `submitit <https://github.com/facebookincubator/submitit>`_ (``pip install
  "biofa[slurm]"``), one job per point submitted as ONE job array (``--jobs`` caps how many run
  at once); each job runs the same ``biofa.run`` command line in the
  job's Python. Logs: ``OUT/slurm/<job id>_*``. By default the launcher waits and reports like
  the local one (exit status 1 if any point failed); ``--slurm-no-wait`` prints the job ids and
  returns. ``--slurm-cluster local`` (or ``debug``) runs the same path on this machine with
  submitit's local executor -- how the tests exercise it without a cluster.

With ``--batch-seeds`` the unit of work is a group of points that differ only in their seed
(:func:`biofa.train.fit` with ``seeds``): each group is one ``biofa.run SPEC --sweep --point
I,J,K --batch-seeds`` process or job, logging to its first run's log.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from biofa.train.interrupt import Interrupted

__all__ = ["LAUNCHERS", "Options", "launch"]

log = logging.getLogger(__name__)
_GRACE = 120  # seconds a stopped child gets to write its record and checkpoint

LAUNCHERS = ("local", "slurm")


@dataclass
class Options:
    """How to launch: the launcher, parallelism and (for SLURM) the job's resources."""

    launcher: str = "local"
    jobs: int = 1
    quiet: bool = False
    extra_args: list[str] = field(default_factory=list)  # --set ..., --resume, --debug
    slurm_cluster: str | None = None  # None: SLURM; "local"/"debug": submitit's local executors
    slurm_partition: str = ""
    slurm_time: int = 60  # minutes
    slurm_gpus: int = 0
    slurm_cpus: int = 0
    slurm_mem_gb: float = 0.0
    slurm_options: dict[str, str] = field(default_factory=dict)  # extra sbatch options
    slurm_wait: bool = True


def _error(message: str) -> None:
    print(f"biofa: error: {message}", file=sys.stderr, flush=True)


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return "(no log)"
    last = next((line for line in reversed(lines) if line), "(no output)")
    return last.removeprefix("biofa: error: ")


Unit = Sequence[tuple[int, object]]  # the (index, Point) pairs one process trains


def point_command(spec_path: Path, unit: Unit, out_dir: Path, extra: Sequence[str]) -> list[str]:
    """The ``biofa.run`` arguments that train ``unit`` (without the interpreter): one sweep
    point, or several seeds of one configuration batched."""
    points = ",".join(str(index) for index, _ in unit)
    batched = ["--batch-seeds"] if len(unit) > 1 else []
    return [str(spec_path), "--sweep", "--point", points, *batched, "--out", str(out_dir), *extra]


def _names(unit: Unit) -> list[str]:
    return [point.name for _, point in unit]


def _label(unit: Unit) -> str:
    """How a report names a unit: its run, or its first run and how many seeds it batches."""
    first = unit[0][1].name
    return first if len(unit) == 1 else f"{first} (+{len(unit) - 1} seeds batched with it)"


def _tally(failed: int, units: Sequence[Unit]) -> str:
    """``"2 of 9 runs failed"``, or for batched seeds how many of the processes (a failed
    process may still have written some of its seeds: its line above says which)."""
    if all(len(unit) == 1 for unit in units):
        return f"{failed} of {len(units)} runs failed"
    return f"{failed} of {len(units)} processes (groups of seeds) failed"


def launch(spec, units: Sequence[Unit], out_dir: Path, options: Options) -> int:
    """Train ``units`` of ``spec``'s sweep, each a list of ``(index, Point)`` pairs that one
    process trains (one point, or seeds batched); return the exit status."""
    if options.launcher not in LAUNCHERS:
        raise ValueError(f"--launcher {options.launcher!r} is not one of {', '.join(LAUNCHERS)}")
    if options.jobs < 1:
        raise ValueError(f"--jobs {options.jobs}: expected a positive number of processes")
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.launcher == "slurm":
        return _slurm(spec, units, out_dir, options)
    return _local(spec, units, out_dir, options)


# ------------------------------------------------------------------------------------- local
def _local(spec, units, out_dir: Path, options: Options) -> int:
    """Each unit in its own ``python -m biofa.run SPEC --sweep --point I`` process.

    Each child runs in its own session, so a terminal's Ctrl-C reaches only this process: on
    SIGINT or SIGTERM it launches no more points, sends every running child SIGTERM (each stops
    after its current step, writing its record and checkpoint), waits for them, reports what
    finished and raises :class:`~biofa.train.interrupt.Interrupted`.
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // options.jobs)))
    root = str(Path(__file__).resolve().parent.parent.parent)  # the biofa this process runs
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    running: dict[int, tuple[subprocess.Popen, Path]] = {}
    guard = threading.Lock()
    stopping = threading.Event()

    def one(n: int, unit: Unit) -> tuple[Unit, int | None, Path]:
        log_path = out_dir / f"{unit[0][1].name}.log"
        argv = point_command(spec.path, unit, out_dir, options.extra_args)
        with guard:
            if stopping.is_set():
                return unit, None, log_path
            log_file = open(log_path, "w")  # noqa: SIM115 - closed below, after the child
            process = subprocess.Popen(
                [sys.executable, "-m", "biofa.run", *argv],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal reaches the launcher only
            )
            running[n] = (process, [out_dir / f"{name}.ckpt" for name in _names(unit)])
        try:
            return unit, process.wait(), log_path
        finally:
            log_file.close()
            with guard:
                running.pop(n, None)

    total = sum(len(unit) for unit in units)
    log.info("%d runs of %s in %d processes; logs in %s", total, spec.name, options.jobs, out_dir)
    failed, done = 0, []
    pool = ThreadPoolExecutor(max_workers=options.jobs)
    futures = [pool.submit(one, n, unit) for n, unit in enumerate(units)]
    try:
        for future in as_completed(futures):
            unit, code, log_path = future.result()
            if code == 0:
                done += _names(unit)
                if not options.quiet:
                    for name in _names(unit):
                        print(f"wrote {out_dir / name}.nc", flush=True)
                continue
            failed += 1
            _error(f"{_label(unit)} failed (exit {code}): {_last_line(log_path)} [log: {log_path}]")
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        raise _stop(signum, futures, running, guard, stopping, done, total) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failed:
        _error(_tally(failed, units))
    return 1 if failed else 0


def _stop(signum, futures, running, guard, stopping, done, total) -> Interrupted:
    """Stop a local sweep (see :func:`_local`); the :class:`Interrupted` that reports it."""
    with guard:
        stopping.set()
        for future in futures:
            future.cancel()
        children = list(running.values())
    for child, _ in children:
        child.send_signal(signal.SIGTERM)
    for child, _ in children:
        try:
            child.wait(timeout=_GRACE)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        except KeyboardInterrupt:  # asked again: do not wait for the records
            for c, _ in children:
                c.kill()
    ckpts = [ckpt for _, unit_ckpts in children for ckpt in unit_ckpts]
    stopped = sum(1 for ckpt in ckpts if ckpt.exists())
    started = len(done) + len(ckpts)
    finished = f" ({', '.join(done[:6])}{', ...' if len(done) > 6 else ''})" if done else ""
    return Interrupted(
        signum,
        message=f"sweep stopped: {len(done)} of {total} runs finished{finished}, {stopped} "
        f"stopped with a checkpoint, {len(ckpts) - stopped} stopped before training, "
        f"{total - started} not started; the same command with --resume continues",
    )


# ------------------------------------------------------------------------------------- SLURM
def _reason(exc: BaseException) -> str:
    """The last line of the job's traceback (submitit puts it between dashed rules)."""
    text = str(exc)
    parts = [part for part in text.split("-" * 22) if "Traceback" in part] or [text]
    lines = [line.strip() for line in parts[-1].splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def _slurm(spec, units, out_dir: Path, options: Options) -> int:
    try:
        import submitit
    except ImportError as err:
        raise ValueError(
            "--launcher slurm needs submitit: pip install 'biofa[slurm]' (submitit>=1.5)"
        ) from err
    folder = out_dir / "slurm"
    executor = submitit.AutoExecutor(folder=folder, cluster=options.slurm_cluster)
    params: dict[str, object] = {
        "name": f"biofa-{spec.name}",
        "timeout_min": options.slurm_time,
        "slurm_array_parallelism": options.jobs,
    }
    if options.slurm_partition:
        params["slurm_partition"] = options.slurm_partition
    if options.slurm_gpus:
        params["gpus_per_node"] = options.slurm_gpus
    if options.slurm_cpus:
        params["cpus_per_task"] = options.slurm_cpus
    if options.slurm_mem_gb:
        params["mem_gb"] = options.slurm_mem_gb
    if options.slurm_options:
        params["slurm_additional_parameters"] = dict(options.slurm_options)
    executor.update_parameters(**params)
    argvs = [point_command(spec.path, unit, out_dir, options.extra_args) for unit in units]
    jobs = []
    with executor.batch():  # one job array
        for argv in argvs:
            # the job runs the same command line in its Python; submitit's CommandFunction raises
            # with the job's last output if it failed
            command = [sys.executable, "-m", "biofa.run", *argv]
            jobs.append(executor.submit(submitit.helpers.CommandFunction(command)))
    total = sum(len(unit) for unit in units)
    log.info(
        "submitted %d runs of %s as %d jobs to %s (logs in %s)",
        total,
        spec.name,
        len(jobs),
        options.slurm_cluster or "slurm",
        folder,
    )
    if not options.slurm_wait:
        for unit, job in zip(units, jobs):
            print(f"submitted {_label(unit)}: job {job.job_id}", flush=True)
        return 0
    failed = 0
    for n, (unit, job) in enumerate(zip(units, jobs)):
        try:
            job.result()
        except KeyboardInterrupt as exc:
            ids = " ".join(str(j.job_id) for j in jobs[n:])
            raise Interrupted(
                getattr(exc, "signum", signal.SIGINT),
                message=f"stopped waiting; {len(jobs) - n} SLURM jobs may still run "
                f"(scancel {ids})",
            ) from None
        except Exception as exc:  # noqa: BLE001 - report every failed point, keep collecting
            failed += 1
            why = _reason(exc)
            _error(f"{_label(unit)} failed (job {job.job_id}): {why} [log: {job.paths.stdout}]")
            continue
        if not options.quiet:
            for name in _names(unit):
                print(f"wrote {out_dir / name}.nc", flush=True)
    if failed:
        _error(_tally(failed, units))
    return 1 if failed else 0
