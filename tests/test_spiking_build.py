"""How a standalone program is compiled (``biofa.spiking.build``), on a small project laid out
like Brian2's (its makefile's variables and rules), without Brian2: the precompiled header made
by make alongside ``objects.cpp``, ``-O1`` for the code that runs once, no serial ``g++ -MM``
pass, nothing rebuilt the second time, and a plain build when the header cannot be precompiled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from biofa.spiking.build import FRAGMENT, HEADER, MAKEFILE_FRAGMENT, _make_compiler_is_gcc, stale

pytestmark = [
    pytest.mark.spiking,
    pytest.mark.skipif(
        shutil.which("make") is None or not _make_compiler_is_gcc(), reason="needs make and GCC"
    ),
]

# Brian2's makefile (2.9), shortened: the same variables, rules and dependency pass
MAKEFILE = """\
PROGRAM = main
SRCS = code_objects/step.cpp code_objects/before_run_queue.cpp main.cpp objects.cpp
OBJS = ${SRCS:.cpp=.o}
OPTIMISATIONS = -include objects.h -w -O3 -std=c++11
CXXFLAGS = -c -Wno-write-strings $(OPTIMISATIONS) -I.
DEPS = make.deps

all: $(PROGRAM)

$(PROGRAM): $(OBJS) $(DEPS) makefile
\t$(CXX) $(OBJS) -o $(PROGRAM)

make.deps: $(SRCS)
\t$(CXX) $(CXXFLAGS) -MM $(SRCS) > make.deps

ifneq ($(wildcard $(DEPS)), )
include $(DEPS)
endif

%.o : %.cpp makefile
\t$(CXX) $(CXXFLAGS) $< -o $@
"""
SOURCES = {
    "objects.h": "#ifndef OBJECTS_H\n#define OBJECTS_H\n#include <vector>\n"
    "extern std::vector<int> values;\nint step(int);\nvoid prepare();\n#endif\n",
    "objects.cpp": '#include "objects.h"\nstd::vector<int> values(3, 1);\n',
    "main.cpp": '#include "objects.h"\n#include <cstdio>\n'
    'int main() { prepare(); std::printf("%d\\n", step(values[0])); }\n',
    "code_objects/step.cpp": '#include "objects.h"\nint step(int x) { return x + 41; }\n',
    "code_objects/before_run_queue.cpp": '#include "objects.h"\nvoid prepare() {}\n',
}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "code_objects").mkdir()
    (tmp_path / "makefile").write_text(MAKEFILE)
    for name, text in SOURCES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / FRAGMENT).write_text(MAKEFILE_FRAGMENT)
    return tmp_path


def make(directory, *args: str) -> str:
    command = ["make", "-j2", "-f", "makefile", "-f", FRAGMENT, "DEPS=", *args]
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def compile_lines(log: str) -> dict[str, str]:
    """Source -> the command make printed for it."""
    out = {}
    for line in log.splitlines():
        for name in SOURCES:
            if name.endswith(".cpp") and f" {name} " in f"{line} ":
                out[name] = line
    return out


def test_fragment_precompiles_the_header_and_compiles_run_once_code_with_O1(project):
    log = make(project, f"BIOFA_PCH={HEADER}")
    assert subprocess.run(["./main"], cwd=project, capture_output=True, text=True).stdout == "42\n"
    header = project / HEADER
    assert header.stat().st_size > 0 and not (project / f"{HEADER}.tmp").exists()
    # the code object waited for the header; objects.cpp did not have to
    assert (project / "code_objects/step.o").stat().st_mtime_ns >= header.stat().st_mtime_ns
    lines = compile_lines(log)
    assert set(lines) == {n for n in SOURCES if n.endswith(".cpp")}
    for name, line in lines.items():
        once = name in ("objects.cpp", "main.cpp", "code_objects/before_run_queue.cpp")
        assert line.split().count("-O1") == int(once), line  # after -O3: the last one counts
        assert "-MMD" in line
    assert not (project / "make.deps").exists()  # no serial `g++ -MM` pass over every source
    assert (project / "code_objects/step.d").read_text().startswith("code_objects/step.o:")


def test_a_built_program_is_not_rebuilt_and_a_changed_header_rebuilds_its_users(project):
    make(project, f"BIOFA_PCH={HEADER}")
    (project / HEADER).unlink()  # as build_standalone does
    assert not stale(project)
    assert "Nothing to be done" in make(project, "BIOFA_PCH=")
    assert not (project / HEADER).exists()  # not made again for nothing
    time.sleep(0.01)
    text = SOURCES["objects.h"].replace("int step(int);", "int step(int);\nint unused();")
    (project / "objects.h").write_text(text)
    os.utime(project / "objects.h")
    assert stale(project)
    lines = compile_lines(make(project, f"BIOFA_PCH={HEADER}"))  # dependencies from the .d files
    assert {"objects.cpp", "main.cpp", "code_objects/step.cpp"} <= set(lines)


def test_a_header_gcc_cannot_precompile_gives_a_plain_build(project, tmp_path_factory):
    wrapper = tmp_path_factory.mktemp("cxx") / "g++"
    wrapper.write_text('#!/bin/sh\ncase "$*" in *c++-header*) exit 1;; esac\nexec g++ "$@"\n')
    wrapper.chmod(0o755)
    make(project, f"BIOFA_PCH={HEADER}", f"CXX={wrapper}")
    assert not (project / HEADER).exists()
    assert subprocess.run(["./main"], cwd=project, capture_output=True, text=True).stdout == "42\n"


def test_stale_means_a_missing_or_older_program(project):
    assert stale(project)  # nothing built yet
    make(project, f"BIOFA_PCH={HEADER}")
    assert not stale(project)
    time.sleep(0.01)
    os.utime(project / "code_objects/step.cpp")
    assert stale(project)
