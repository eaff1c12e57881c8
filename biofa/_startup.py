"""A Ctrl-C while the command line is still importing (torch takes seconds) prints one line.

``biofa/__init__.py`` imports this module first, which calls :func:`guard`: when this process is
the command line (``python -m biofa.run``, ``python -m biofa``, the ``biofa`` script), an uncaught
``KeyboardInterrupt`` before :func:`biofa.cli.main.main` takes over prints ``biofa: error:
interrupted by SIGINT`` instead of a traceback (the process still ends by SIGINT, status 130).
``main`` calls :func:`release`; it handles interruptions itself.
"""

import os
import sys

_original = sys.excepthook


def _hook(kind, value, traceback) -> None:
    if issubclass(kind, KeyboardInterrupt):
        print("biofa: error: interrupted by SIGINT while starting", file=sys.stderr, flush=True)
        return
    _original(kind, value, traceback)


def guard() -> None:
    """Install the hook in the command line's process (see the module docstring)."""
    command = os.path.basename(sys.argv[0]) if sys.argv else ""
    if sys.argv[:1] == ["-m"] or command == "biofa":  # "-m" while `python -m` imports packages
        sys.excepthook = _hook


def release() -> None:
    """Give the original hook back."""
    if sys.excepthook is _hook:
        sys.excepthook = _original


guard()
