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

Many seeds of one configuration can instead share one process (``--batch-seeds``,
:func:`biofa.train.fit` with ``seeds``); that runs in the calling process and does not combine
with a launcher
yet (each group of seeds as one job would be the natural next step).
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


def point_command(spec_path: Path, index: int, out_dir: Path, extra: Sequence[str]) -> list[str]:
    """The ``biofa.run`` arguments of sweep point ``index`` (without the interpreter)."""
    return [str(spec_path), "--sweep", "--point", str(index), "--out", str(out_dir), *extra]


def launch(spec, points: Sequence[tuple[int, object]], out_dir: Path, options: Options) -> int:
    """Run ``points`` (``(index, Point)`` pairs of ``spec``'s sweep); return the exit status."""
    if options.launcher not in LAUNCHERS:
        raise ValueError(f"--launcher {options.launcher!r} is not one of {', '.join(LAUNCHERS)}")
    if options.jobs < 1:
        raise ValueError(f"--jobs {options.jobs}: expected a positive number of processes")
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.launcher == "slurm":
        return _slurm(spec, points, out_dir, options)
    return _local(spec, points, out_dir, options)


# ------------------------------------------------------------------------------------- local
def _local(spec, points, out_dir: Path, options: Options) -> int:
    """Each point in its own ``python -m biofa.run SPEC --sweep --point I`` process.

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

    def one(index: int, point) -> tuple[object, int | None, Path]:
        log_path = out_dir / f"{point.name}.log"
        argv = point_command(spec.path, index, out_dir, options.extra_args)
        with guard:
            if stopping.is_set():
                return point, None, log_path
            log_file = open(log_path, "w")  # noqa: SIM115 - closed below, after the child
            process = subprocess.Popen(
                [sys.executable, "-m", "biofa.run", *argv],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal reaches the launcher only
            )
            running[index] = (process, out_dir / f"{point.name}.ckpt")
        try:
            return point, process.wait(), log_path
        finally:
            log_file.close()
            with guard:
                running.pop(index, None)

    log.info(
        "%d runs of %s in %d processes; logs in %s", len(points), spec.name, options.jobs, out_dir
    )
    failed, done = 0, []
    pool = ThreadPoolExecutor(max_workers=options.jobs)
    futures = [pool.submit(one, index, point) for index, point in points]
    try:
        for future in as_completed(futures):
            point, code, log_path = future.result()
            if code == 0:
                done.append(point.name)
                if not options.quiet:
                    print(f"wrote {out_dir / point.name}.nc", flush=True)
                continue
            failed += 1
            _error(f"{point.name} failed (exit {code}): {_last_line(log_path)} [log: {log_path}]")
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        raise _stop(signum, futures, running, guard, stopping, done, len(points)) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failed:
        _error(f"{failed} of {len(points)} runs failed")
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
    stopped = sum(1 for child, ckpt in children if ckpt.exists())
    started = len(done) + len(children)
    finished = f" ({', '.join(done[:6])}{', ...' if len(done) > 6 else ''})" if done else ""
    return Interrupted(
        signum,
        message=f"sweep stopped: {len(done)} of {total} runs finished{finished}, {stopped} "
        f"stopped with a checkpoint, {len(children) - stopped} stopped before training, "
        f"{total - started} not started; the same command with --resume continues",
    )


# ------------------------------------------------------------------------------------- SLURM
def _reason(exc: BaseException) -> str:
    """The last line of the job's traceback (submitit puts it between dashed rules)."""
    text = str(exc)
    parts = [part for part in text.split("-" * 22) if "Traceback" in part] or [text]
    lines = [line.strip() for line in parts[-1].splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def _slurm(spec, points, out_dir: Path, options: Options) -> int:
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
    argvs = [point_command(spec.path, index, out_dir, options.extra_args) for index, _ in points]
    jobs = []
    with executor.batch():  # one job array
        for argv in argvs:
            # the job runs the same command line in its Python; submitit's CommandFunction raises
            # with the job's last output if it failed
            command = [sys.executable, "-m", "biofa.run", *argv]
            jobs.append(executor.submit(submitit.helpers.CommandFunction(command)))
    names = [point.name for _, point in points]
    log.info(
        "submitted %d runs of %s to %s (logs in %s)",
        len(jobs),
        spec.name,
        options.slurm_cluster or "slurm",
        folder,
    )
    if not options.slurm_wait:
        for name, job in zip(names, jobs):
            print(f"submitted {name}: job {job.job_id}", flush=True)
        return 0
    failed = 0
    for n, (name, job) in enumerate(zip(names, jobs)):
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
            _error(f"{name} failed (job {job.job_id}): {why} [log: {job.paths.stdout}]")
            continue
        if not options.quiet:
            print(f"wrote {out_dir / name}.nc", flush=True)
    if failed:
        _error(f"{failed} of {len(points)} runs failed")
    return 1 if failed else 0
