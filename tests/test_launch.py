"""Sweep launchers (``biofa.cli.launch``): local processes and SLURM through submitit's local
executor.

Each point is an independent ``biofa.cli.main`` process; the spec below fakes ``biofa.train.fit`` in
every child (it writes a small file, and fails for seed 1), so a failed point must be reported
while the others finish.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

import biofa.cli.main
from biofa.cli.main import main

SPEC = textwrap.dedent(
    """
    import os, sys, types
    from pathlib import Path
    from biofa import Circuit, Units, dense
    from biofa.cli.sweep import grid
    from biofa.train.config import Train


    def circuit():
        c = Circuit("toy")
        c.input("img")
        c.area("v1", Units(2))
        c.readout("out")
        c.connect("img", "v1", dense(flatten=True))
        c.connect("v1", "out", dense())
        return c


    train = Train(epochs=1)

    if os.environ.get("BIOFA_TEST_FAKE_FIT"):
        import biofa.cli.main

        def fit(circuit, train, *, out, coords, run_config, attrs, resume=False, save_model=True,
                seeds=None):
            if seeds is not None:  # --batch-seeds: one call for the group
                Path(str(out[0]) + ".group").write_text(f"{seeds} pid {os.getpid()}")
                if 1 in seeds:
                    raise RuntimeError("fake failure of seed 1")
                return [fit(circuit, train, out=o, coords=c, run_config=None, attrs=None)
                        for o, c in zip(out, coords)]
            if coords["seed"] == 1:
                raise RuntimeError("fake failure of seed 1")
            Path(out).write_text(f"{coords} pid {os.getpid()}")
            return Path(out)

        biofa.cli.main.fit = fit  # this process's command line trains with it

    sweep = grid(seed=range(3))
    """
)


@pytest.fixture
def spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BIOFA_TEST_FAKE_FIT", "1")  # read by the spec, in every child
    monkeypatch.setattr(biofa.cli.main, "fit", biofa.cli.main.fit)  # restored afterwards
    root = str(Path(__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p))
    Path("toy.py").write_text(SPEC)
    return "toy.py"


def check(capsys, failed_line_start: str) -> None:
    captured = capsys.readouterr()
    assert sorted(captured.out.splitlines()) == [
        "wrote out/rule-backprop_seed-0.nc", "wrote out/rule-backprop_seed-2.nc"]
    err = captured.err.splitlines()
    assert err[0].startswith(failed_line_start), err
    assert "fake failure of seed 1" in err[0]
    assert err[-1] == "biofa: error: 1 of 3 runs failed"
    pids = {Path(f"out/rule-backprop_seed-{s}.nc").read_text().split(" pid ")[1] for s in (0, 2)}
    assert str(os.getpid()) not in pids, "each point runs in its own process"
    assert not Path("out/rule-backprop_seed-1.nc").exists()


def test_local_launcher_reports_the_failed_point_and_finishes_the_rest(spec, capsys):
    assert main([spec, "--sweep", "--launcher", "local", "--jobs", "2", "--out", "out"]) == 1
    check(capsys, "biofa: error: rule-backprop_seed-1 failed (exit 1)")


def test_slurm_launcher_through_submitit_local_executor(spec, capsys):
    pytest.importorskip("submitit")
    code = main([spec, "--sweep", "--launcher", "slurm", "--slurm-cluster", "local", "--jobs",
                 "3", "--slurm-time", "5", "--out", "out"])
    assert code == 1
    check(capsys, "biofa: error: rule-backprop_seed-1 failed (job ")
    assert Path("out/slurm").is_dir()  # submitit's job folder: pickles and logs per job


def test_slurm_without_submitit_is_a_one_line_error(spec, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import fails
    assert main([spec, "--sweep", "--launcher", "slurm", "--out", "out"]) == 2
    assert "pip install 'biofa[slurm]'" in capsys.readouterr().err


def test_batched_seeds_are_one_process_per_group(spec, capsys):
    """``--batch-seeds --jobs 2``: the three seeds are one child (``--point 0,1,2
    --batch-seeds``), whose failure is reported once, naming the group."""
    assert main([spec, "--sweep", "--batch-seeds", "--jobs", "2", "--out", "out"]) == 1
    group = Path("out/rule-backprop_seed-0.nc.group").read_text()
    assert group.startswith("[0, 1, 2] pid ") and str(os.getpid()) not in group
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("biofa: error: rule-backprop_seed-0 (+2 seeds batched with it) "
                             "failed (exit 1)"), err
    assert err[-1] == "biofa: error: 1 of 1 processes (groups of seeds) failed"
    assert sorted(p.name for p in Path("out").glob("*.log")) == ["rule-backprop_seed-0.log"]
