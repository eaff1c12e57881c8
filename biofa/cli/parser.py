"""The command line's arguments (``argparse``) and its ``--help`` text."""

from __future__ import annotations

import argparse

from biofa._version import __version__

__all__ = ["build_parser"]

_EPILOG = """\
examples:
  python -m biofa.run circuits/ei_mlp.py
  python -m biofa.run circuits/ei_mlp.py --set rule=feedback_alignment epochs=2 lr=1e-3
  python -m biofa.run circuits/ei_cnn.py --sweep --jobs 4 --out runs/cnn_sweep
  python -m biofa.run circuits/ei_cnn.py --sweep --set rule=backprop,kolen_pollack
  python -m biofa.run circuits/ei_cnn.py --resume
  python -m biofa.run --list-rules

A key given to --set is a keyword of the spec's circuit() or a field of Train; the spec's sweep
(sweep = grid(rule=[...], seed=range(3))) runs with --sweep. With --sweep, --set of a swept key
keeps only the points with that value (several: --set rule=usf,frsf), and --sweep --point I runs
only point I (0-based index in the spec's sweep; e.g. one SLURM array task per point, see
--dry-run for the list).

Files: each run writes OUT/<run>.nc, its final model OUT/<run>.model.pt (biofa.load_model) and,
while it trains, OUT/<run>.ckpt when Train.checkpoint_every > 0 or when a signal stops it. <run>
is rule-<rule>_seed-<seed>, then the swept keys the point sets, then cfg-<hash> when other
settings differ from the spec's defaults. A run never replaces another configuration's file
(refused, naming what differs; --overwrite replaces it); rerunning the same configuration
replaces its own file.

Stopping and resuming: Ctrl-C (SIGINT) or SIGTERM (SLURM preemption) stops after the current
step, writes the record so far (status "interrupted") and a checkpoint, and exits with status
130 or 143; the same command with --resume continues it bit for bit. --resume needs that
checkpoint (or one written every Train.checkpoint_every steps), the same spec file and the same
settings except epochs, max_steps, checkpoint_every, record_every, eval_every and data_root
(a change of those is recorded in the file's "resumed" attribute); anything else is refused.
With --resume, a run with no checkpoint starts from step 0 (said in the log) and a complete run
is skipped.

Exit status: 0 done; 1 a run diverged, a sweep point failed, or an unexpected error; 2 a user
error (one line "biofa: error: ..."); 130/143 stopped by SIGINT/SIGTERM.
"""


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
        help="override a circuit() keyword or Train field (repeatable; --set a=1 b=2); with "
             "--sweep, a swept key selects points (--set rule=usf,frsf)")  # fmt: skip
    add("--sweep", action="store_true", help="run every point of the spec's sweep")
    add(
        "--point",
        metavar="I[,J...]",
        help="with --sweep: run only sweep point I (0-based), or the points I,J,...",
    )
    add("--jobs", type=int, default=1, metavar="N",
        help="run sweep points in N parallel local processes (default 1); with --launcher "
             "slurm, at most N jobs at once")  # fmt: skip
    add("--launcher", choices=("local", "slurm"), default="local",
        help="where sweep points run: local processes (--jobs N) or SLURM jobs via submitit "
             "(biofa.cli.launch)")  # fmt: skip
    add("--batch-seeds", action="store_true",
        help="train sweep points that differ only in seed together, as one batched "
             "computation in one process (fit(..., seeds=...)); with --jobs N or --launcher "
             "slurm, each group of seeds is one process or job")  # fmt: skip
    slurm = parser.add_argument_group("SLURM (--launcher slurm)")
    slurm.add_argument("--slurm-partition", default="", metavar="NAME")
    slurm.add_argument("--slurm-time", type=int, default=60, metavar="MIN",
                       help="time limit per point in minutes (default 60)")  # fmt: skip
    slurm.add_argument("--slurm-gpus", type=int, default=0, metavar="N", help="GPUs per job")
    slurm.add_argument("--slurm-cpus", type=int, default=0, metavar="N", help="CPUs per job")
    slurm.add_argument("--slurm-mem", type=float, default=0.0, metavar="GB", help="memory per job")
    slurm.add_argument("--slurm-opt", action="append", default=[], metavar="KEY=VALUE",
                       help="extra sbatch option, e.g. account=abc (repeatable)")  # fmt: skip
    slurm.add_argument("--slurm-no-wait", action="store_true",
                       help="submit and return (default: wait, report failed points)")  # fmt: skip
    slurm.add_argument("--slurm-cluster", default=None, help=argparse.SUPPRESS)  # local/debug
    add("--out", metavar="DIR", help="output directory (default runs/<spec name>/)")
    add("--resume", action="store_true",
        help="continue each run from its checkpoint OUT/<run>.ckpt (see below); a run without "
             "one starts from step 0, a complete one is skipped")  # fmt: skip
    add(
        "--overwrite",
        action="store_true",
        help="replace files of other configurations, and start unfinished runs over",
    )
    add("--no-model", action="store_true", help="do not keep the final model (<run>.model.pt)")
    add("--dry-run", action="store_true",
        help="check everything short of training (spec, data, memory, the network's "
             "forward and backward on two images, the output files), list the runs, train "
             "nothing")  # fmt: skip
    add("--list-rules", action="store_true", help="list the feedback rules and their options")
    add("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    add("-q", "--quiet", action="store_true", help="print warnings and errors only")
    add("--version", action="version", version=f"biofa {__version__}")
    return parser
