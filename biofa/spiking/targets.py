"""Brian2 code-generation targets: which one runs, and the standalone device's build folders.

* ``"numpy"``: pure Python/numpy, no compiler; what the tests use.
* ``"cython"``: runtime mode with compiled code objects (cached in ``~/.cython``).
* ``"cpp_standalone"``: the whole network as one C++ program, built once into a folder under
  ``$BIOFA_CACHE/brian2`` (default ``~/.cache/biofa/brian2``) keyed by the network's structure and
  re-run with new inputs through ``run_args`` (Brian2 >= 2.6); an unchanged structure reuses the
  built program (make finds nothing to do), since weights and inputs are data files. How it is
  compiled fast (a precompiled header, no serial dependency pass): :mod:`biofa.spiking.build`.
* ``"auto"``: ``cpp_standalone`` where a C++ compiler is found, otherwise ``numpy``, with a logged
  message saying why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import sysconfig
from pathlib import Path

from biofa.spiking._brian import require_brian2

log = logging.getLogger(__name__)

TARGETS = ("auto", "numpy", "cython", "cpp_standalone")


def compiler() -> str | None:
    """The C++ compiler Brian2 would call (``$CXX``, Python's own, g++...), if one is present."""
    candidates = [
        os.environ.get("CXX", ""),
        (sysconfig.get_config_var("CXX") or "").split(" ")[0],
        "g++",
        "c++",
        "clang++",
    ]
    return next((c for c in candidates if c and shutil.which(c)), None)


def resolve(target: str) -> str:
    """The target that will run for ``target`` (see the module docstring); logs any fallback."""
    if target not in TARGETS:
        raise ValueError(f"target={target!r} is not one of {', '.join(TARGETS)}")
    if target == "numpy":
        return target
    if compiler() is None:
        log.warning(
            "biofa.spiking: no C++ compiler found ($CXX, g++, c++, clang++); target=%r "
            "falls back to the numpy target (slower; install a compiler for speed)",
            target,
        )
        return "numpy"
    if target == "cython":
        try:
            import Cython  # noqa: F401
        except ImportError:
            log.warning(
                "biofa.spiking: Cython is not installed; target='cython' falls back to "
                "the numpy target (pip install cython)"
            )
            return "numpy"
    resolved = "cpp_standalone" if target == "auto" else target
    log.info("biofa.spiking: code-generation target %s", resolved)
    return resolved


def activate(target: str) -> None:
    """Select ``target`` in Brian2 (resetting a standalone device left by a previous network)."""
    b2 = require_brian2()
    device = b2.get_device()
    if getattr(device, "has_been_run", False) or device.__class__.__name__ == "CPPStandaloneDevice":
        device.reinit()
    if target == "cpp_standalone":
        b2.set_device("cpp_standalone", build_on_run=False)
        # Brian2's default `make -j` starts every compiler at once; one per core is enough.
        b2.prefs.devices.cpp_standalone.extra_make_args_unix = [f"-j{os.cpu_count() or 1}"]
    else:
        b2.set_device("runtime")
        b2.prefs.codegen.target = target


def release(target: str) -> None:
    """Leave the standalone device (if ``target`` used it) and return to runtime mode."""
    if target != "cpp_standalone":
        return
    b2 = require_brian2()
    b2.get_device().reinit()
    b2.set_device("runtime")


def build_directory(signature: str) -> Path:
    """Where the standalone program for a network of this structure is built."""
    root = Path(os.environ.get("BIOFA_CACHE", "") or "~/.cache/biofa").expanduser() / "brian2"
    b2 = require_brian2()
    # Brian2 compiles with -march=native: a build belongs to its machine.
    machine = (
        f"{platform.node()}|{platform.machine()}|{b2.prefs.codegen.cpp.extra_compile_args_gcc}"
    )
    key = hashlib.sha256(f"{b2.__version__}|{machine}|{signature}".encode()).hexdigest()[:16]
    return root / f"standalone-{key}"
