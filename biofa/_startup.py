"""A Ctrl-C (or SIGTERM) while the command line is still importing prints one line.

Importing torch takes seconds. A ``KeyboardInterrupt`` raised then can land inside a C++
extension's callback, which aborts the process (``terminate called after throwing ...``), or
reach the top level as a traceback. ``biofa/__init__.py`` imports this module first, which calls
:func:`guard`: when this process is the command line (``python -m biofa.run``, ``python -m
biofa``, the ``biofa`` script), SIGINT and SIGTERM print ``biofa: error: interrupted by SIGINT
while starting`` and end the process at once with status 130 / 143 -- nothing has been written
yet. :func:`biofa.cli.main.main` calls :func:`release` first and handles signals itself.
"""

import os
import signal
import sys

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_previous: dict = {}


def _stop(signum, frame) -> None:
    name = signal.Signals(signum).name
    print(f"biofa: error: interrupted by {name} while starting", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def guard() -> None:
    """Install the handlers in the command line's process (see the module docstring)."""
    command = os.path.basename(sys.argv[0]) if sys.argv else ""
    if sys.argv[:1] != ["-m"] and command != "biofa":  # "-m": `python -m` imports packages
        return
    for sig in _SIGNALS:
        try:
            if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup & co: stay immune
                _previous[sig] = signal.signal(sig, _stop)
        except ValueError:  # not the main thread
            return


def release() -> None:
    """Give the previous handlers back."""
    while _previous:
        sig, handler = _previous.popitem()
        if signal.getsignal(sig) is _stop:
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


guard()
