"""Brian2 code-generation targets: which one runs, and the standalone device's build folders.

* ``"numpy"``: pure Python/numpy, no compiler; what the tests use.
* ``"cython"``: runtime mode with compiled code objects (cached in ``~/.cython``).
* ``"cpp_standalone"``: the whole network as one C++ program, built once into a folder under
  ``$BIOFA_CACHE/brian2`` (default ``~/.cache/biofa/brian2``) keyed by the network's structure and
  re-run with new inputs through ``run_args`` (Brian2 >= 2.6); an unchanged structure reuses the
  built program (make finds nothing to do), since weights and inputs are data files. With GCC the
  header every generated file includes (``objects.h``, ~0.6 s to parse) is precompiled once
  (:func:`build_standalone`), which halves a cold build.
* ``"auto"``: ``cpp_standalone`` where a C++ compiler is found, otherwise ``numpy``, with a logged
  message saying why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sysconfig
from functools import cache
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


PCH_FLAGS = ("-include", "objects.h")


def build_standalone(directory: Path) -> None:
    """Generate the standalone program of the current network into ``directory`` and compile it.

    Brian2 generates ~30 files that all include ``objects.h`` (the declarations of every array
    and object, plus ``<random>``, ``<vector>``...): parsing it is most of each file's compile time
    (0.6 of 0.7-0.9 s with ``-O3``). With GCC, the files are compiled with ``-include objects.h``
    and the header is first precompiled to ``objects.h.gch`` with the same flags, so each file
    parses it in a few milliseconds (measured: make 15.4 s -> 6-9 s plus 1.6 s for the header on
    2 cores). The include guard makes the files' own ``#include "objects.h"`` a no-op. If the
    precompiled header cannot be made or used, GCC silently parses the header as usual.
    """
    b2 = require_brian2()
    from brian2.codegen.cpp_prefs import get_compiler_and_args

    device = b2.get_device()
    flags = list(device.extra_compile_args)  # not the prefs: Brian2 drops flags it cannot probe
    precompile = _make_compiler_is_gcc()
    if precompile:
        device.extra_compile_args = [*flags, *PCH_FLAGS]
    try:
        device.build(directory=str(directory), compile=False, run=False, with_output=False)
    finally:
        device.extra_compile_args = flags
    header = directory / "objects.h.gch"
    if precompile and _stale(directory):
        _precompile_header(directory, header)
    compiler, _ = get_compiler_and_args()
    try:
        device.compile_source(str(directory), compiler, False, False)
    finally:
        header.unlink(missing_ok=True)  # 40+ MB, and only needed while compiling


@cache
def _make_compiler_is_gcc() -> bool:
    """Whether the compiler make will call (``$CXX``, else ``g++``) is GCC."""
    cxx = os.environ.get("CXX") or "g++"
    try:
        out = subprocess.run(
            [*shlex.split(cxx), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "Free Software Foundation" in out and "clang" not in out.lower()


def _stale(directory: Path) -> bool:
    """Whether make will compile anything (the program is missing or older than its sources)."""
    program = directory / "main"
    if not program.exists():
        return True
    built = program.stat().st_mtime
    sources = [directory / "makefile", directory / "objects.h", directory / "objects.cpp"]
    sources += (directory / "code_objects").glob("*.cpp")
    return any(p.stat().st_mtime > built for p in sources if p.exists())


def _precompile_header(directory: Path, header: Path) -> None:
    """``objects.h`` -> ``objects.h.gch`` with the makefile's own compile flags."""
    makefile = (directory / "makefile").read_text()
    line = next((ln for ln in makefile.splitlines() if ln.startswith("OPTIMISATIONS =")), None)
    if line is None:
        return
    flags = shlex.split(line.partition("=")[2].replace(" ".join(PCH_FLAGS), ""))
    cxx = shlex.split(os.environ.get("CXX") or "g++")
    command = [
        *cxx,
        "-Wno-write-strings",
        *flags,
        "-I.",
        "-x",
        "c++-header",
        "objects.h",
        "-o",
        header.name,
    ]
    result = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    if result.returncode != 0:  # compile as usual, just slower
        header.unlink(missing_ok=True)
        log.info("biofa.spiking: could not precompile objects.h (%s)", result.stderr[-300:])
