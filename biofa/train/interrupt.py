"""Stopping a run on SIGINT (Ctrl-C) and SIGTERM (what SLURM sends on preemption) without losing it.

While :func:`biofa.train.fit` trains, :class:`StopRequests` replaces the handlers of both signals
by one that only notes the request; the loop looks at the note after every step (a Python
attribute: no device sync; under DDP the ranks agree on it where they already agree on the NaN
guard), writes every run's checkpoint and its record so far (status ``interrupted: ...``) and
raises :class:`Interrupted`. ``--resume`` continues from that checkpoint bit for bit. Further
signals while the run is stopping are noted and ignored, so the files are always complete. The
previous handlers come back when training ends. Outside the main thread (where Python cannot
install handlers) nothing changes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SIGNALS", "Interrupted", "StopRequests", "exit_status", "raise_interrupted"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; what it wrote is in :attr:`paths` (``KeyboardInterrupt``, so
    code that handles Ctrl-C handles it)."""

    def __init__(self, signum: int, step: int | None = None, total: int | None = None,
                 paths: Sequence[Path] = (), message: str = ""):  # fmt: skip
        self.signum, self.step, self.total, self.paths = signum, step, total, list(paths)
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        if self.message:
            return f"interrupted by {name}: {self.message}"
        if self.step is None:
            return f"interrupted by {name}"
        files = ", ".join(str(p) for p in self.paths)
        ckpts = "its checkpoint" if len(self.paths) == 1 else "their checkpoints"
        return (
            f"interrupted by {name} at step {self.step} of {self.total}: wrote {files} (status "
            f"interrupted) and {ckpts} (.ckpt); the same command with --resume continues"
        )


def exit_status(signum: int) -> int:
    """The shell's status of a process ended by ``signum``: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


def raise_interrupted(signum: int, frame: object) -> None:
    """A signal handler raising :class:`Interrupted` (start-up code unwinds, nothing written)."""
    raise Interrupted(signum)


class StopRequests:
    """Within it, SIGINT and SIGTERM set :attr:`signum` instead of stopping the process."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.repeats = 0
        self._previous: dict[int, object] = {}

    def _note(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum
        else:
            self.repeats += 1

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup & co: stay immune
                    self._previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
