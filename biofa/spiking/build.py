"""Compiling a standalone program: Brian2's makefile, plus a fragment of biofa's for GCC.

Brian2 generates ~30 C++ files (one per code object, plus ``objects.cpp``, ``main.cpp``,
``network.cpp``...) that all include ``objects.h`` (every array and object of the network,
``<random>``, ``<vector>``: 0.6 s to parse, most of each file's compile time), and a makefile that
first lists the header dependencies with one ``g++ -MM`` over every source, in one process, before
compiling anything. With GCC, biofa runs make with its own fragment as well
(``make -f makefile -f biofa.mk``, written into the build folder):

* ``objects.h`` is **precompiled** once (``objects.h.gch``, as a make target, written under a
  temporary name and renamed, so no compiler sees half of it) and every file is compiled with
  ``-include objects.h``; every file but ``objects.cpp`` waits for the header, so that one
  compiles alongside it and both cores are busy from the start;
* the files whose code runs once per program run (:data:`COLD`: ``objects.cpp``, ``main.cpp``,
  building the synapses and their spike queues) are compiled with ``-O1``, in half the time
  (``objects.cpp`` 3.0 -> 1.7 s, a spike queue's set-up 1.3 -> 0.6 s); the simulation loop is not
  in them, and every other code object keeps Brian2's ``-O3``;
* the **serial ``g++ -MM`` pass** (3 s on the benchmark's network, before any compilation; its
  rules named the code objects' targets without their folder, so make never matched them) is
  replaced by ``-MMD``: each compilation writes its own dependencies, which the next make reads.

The header (40+ MB) is removed after the build, and made only when something is to be compiled
(:func:`stale`). If GCC cannot precompile it, the files parse it as usual. Other compilers build
with Brian2's makefile alone.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from functools import cache
from pathlib import Path

from biofa.spiking._brian import require_brian2

log = logging.getLogger(__name__)

PCH_FLAGS = ("-include", "objects.h")
FRAGMENT = "biofa.mk"
HEADER = "objects.h.gch"
#: files whose code runs once per program run (arrays: allocation, files, initial values; building
#: the synapses and their spike queues): -O1 compiles them in half the time, and the simulation
#: loop is not in them (measured: the same program run time)
COLD = (
    "objects.o main.o $(filter code_objects/before_run_% code_objects/after_run_% "
    "%_create_array_codeobject.o %_create_generator_codeobject.o "
    "%_group_variable_set_codeobject.o %_group_variable_set_conditional_codeobject.o,$(OBJS))"
)

MAKEFILE_FRAGMENT = f"""\
# biofa.spiking.build (read after Brian2's makefile: make -f makefile -f {FRAGMENT})
.DEFAULT_GOAL := biofa_program
.PHONY: biofa_program
# BIOFA_PCH={HEADER} when something is to be compiled (given on the command line), else empty;
# first the header and objects.o (the longest compilation, which does not wait for the header)
biofa_program: $(BIOFA_PCH) objects.o $(PROGRAM)
$(filter-out objects.o,$(OBJS)): | $(BIOFA_PCH)
{COLD}: private OPTIMISATIONS += -O1
CXXFLAGS += -MMD -MP
-include $(OBJS:.o=.d)
{HEADER}: objects.h
\t-@$(CXX) $(filter-out -c -MMD -MP {" ".join(PCH_FLAGS)},$(CXXFLAGS)) -x c++-header objects.h \\
\t  -o $@.tmp 2> biofa_header.log && mv -f $@.tmp $@
"""


def build_standalone(directory: Path) -> None:
    """Generate the standalone program of the current network into ``directory`` and compile it."""
    b2 = require_brian2()
    from brian2.codegen.cpp_prefs import get_compiler_and_args

    device = b2.get_device()
    prefs = b2.prefs.devices.cpp_standalone
    flags = list(device.extra_compile_args)  # not the prefs: Brian2 drops flags it cannot probe
    fast = _make_compiler_is_gcc()
    if fast:
        device.extra_compile_args = [*flags, *PCH_FLAGS]
    try:
        device.build(directory=str(directory), compile=False, run=False, with_output=False)
    finally:
        device.extra_compile_args = flags
    make_args = list(prefs.extra_make_args_unix)
    header = directory / HEADER
    if fast:
        fragment = directory / FRAGMENT
        if not fragment.exists() or fragment.read_text() != MAKEFILE_FRAGMENT:
            fragment.write_text(MAKEFILE_FRAGMENT)
        pch = HEADER if stale(directory) else ""
        # DEPS= : no `g++ -MM` pass (and no make.deps to include); -MMD writes the .d files
        extra = ["-f", "makefile", "-f", FRAGMENT, "DEPS=", f"BIOFA_PCH={pch}"]
        prefs.extra_make_args_unix = [*make_args, *extra]
    compiler, _ = get_compiler_and_args()
    try:
        device.compile_source(str(directory), compiler, False, False)
    finally:
        prefs.extra_make_args_unix = make_args
        if fast and pch and not header.exists():
            report = directory / "biofa_header.log"
            text = report.read_text()[-300:] if report.exists() else ""
            log.info("biofa.spiking: could not precompile objects.h (%s)", text)
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


def stale(directory: Path) -> bool:
    """Whether make will compile anything (the program is missing or older than a source)."""
    program = directory / "main"
    if not program.exists():
        return True
    built = program.stat().st_mtime
    sources = [directory / "makefile"]  # not the fragment: it changes how, not what
    for folder in (directory, directory / "code_objects", directory / "brianlib"):
        sources += folder.glob("*.cpp")
        sources += folder.glob("*.h")
    return any(p.stat().st_mtime > built for p in sources if p.exists())
