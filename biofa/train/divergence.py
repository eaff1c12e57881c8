"""When a run has diverged, and how that is said.

A run diverges when its loss is NaN or infinite, or when it explodes but stays finite: a mean
training loss over a record window above ``Train.diverge_loss`` while the window's training
accuracy is within 1.5x chance. (A net that still learns can have a huge mean loss from a few
wildly wrong answers; it is not stopped.) :func:`biofa.train.fit` stops such a run, writes its
file with status ``diverged: <why>`` and raises :class:`Diverged` after the others finish.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from biofa.train.config import Train

__all__ = ["Diverged", "diverged_message", "exploded"]


class Diverged(RuntimeError):
    """The loss became NaN or infinite, or exploded (module docstring); what was recorded before
    is in the output file."""


def exploded(train: Train, loss: float, accuracy: float, classes: int) -> bool:
    """Whether a finite window ``loss`` with training ``accuracy`` is an exploded net."""
    return bool(train.diverge_loss) and loss > train.diverge_loss and accuracy < 1.5 / classes


def diverged_message(diverged: Sequence[tuple[int, int, int, str]], runs: Sequence[Any]) -> str:
    """One line for ``diverged`` ``(run index, step, epoch, why)`` of ``runs`` (``.seed``,
    ``.out``)."""
    if len(runs) == 1:
        (_, _, epoch, why), out = diverged[0], runs[0].out
        return (
            f"diverged: {why} (epoch {epoch}); stopped. Metrics recorded before it are kept in "
            f"{out}"
        )
    which = "; ".join(f"seed {runs[k].seed}: {why} ({runs[k].out})"
                      for k, _, _, why in diverged)  # fmt: skip
    return (
        f"{len(diverged)} of {len(runs)} seeds diverged: {which}; every file is written (the "
        "others completed)"
    )
