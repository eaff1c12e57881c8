"""The command line, in-process with a fake ``biofa.train`` (plus two real subprocess runs)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import xarray as xr

import biofa.cli.main
import biofa.rules
from biofa.cli.main import main
from biofa.train import Diverged

CIRCUIT = """
from biofa import Circuit, Units, dense
from biofa.cli.sweep import grid
from biofa.train.config import Train


def circuit(width: int = 8, rule: str = "backprop"):
    # a tiny real circuit; `rule` is only a coordinate (the fake rules are not registered)
    c = Circuit("toy")
    c.input("img")
    c.area("hidden", Units(width))
    c.readout("out")
    c.connect("img", "hidden", dense(flatten=True))
    c.connect("hidden", "out", dense())
    return c


train = Train(epochs=2)
"""


@pytest.fixture(autouse=True)
def setup(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(biofa.rules, "available", lambda: ["backprop", "fa"])
    monkeypatch.setattr(biofa.rules, "describe", lambda name: f"the {name} rule")


@pytest.fixture
def fit_calls(monkeypatch):
    """Replace the command line's ``fit`` by one that records its calls and writes a stub."""
    calls = []

    def fit(circuit, train, *, out, coords, run_config, attrs, resume=False, save_model=True):
        calls.append(dict(circuit=circuit, train=train, out=out, coords=coords,
                          run_config=run_config, attrs=attrs, resume=resume,
                          save_model=save_model))  # fmt: skip
        if train.lr > 1:
            raise Diverged(f"loss became NaN/inf at step 3; stopped. Metrics kept in {out}")
        write_run(out, run_config, attrs["spec_sha256"])
        return out

    monkeypatch.setattr(biofa.cli.main, "fit", fit)
    return calls


def write_run(out: Path, run_config: dict, sha: str, status: str = "complete") -> None:
    """A stand-in run file: what the command line reads back from an existing one."""
    config = json.dumps(run_config, sort_keys=True, default=str)
    ds = xr.Dataset({"run_config": ((), config)}, attrs={"spec_sha256": sha, "status": status})
    ds.to_netcdf(out)


def spec_file(body: str = "", name: str = "toy") -> str:
    Path(f"{name}.py").write_text(CIRCUIT + textwrap.dedent(body))
    return f"{name}.py"


def test_one_run(fit_calls, capsys):
    assert main([spec_file()]) == 0
    (call,) = fit_calls
    assert call["out"] == Path("runs/toy/rule-backprop_seed-0.nc") and call["out"].exists()
    assert call["coords"] == {"rule": "backprop", "seed": 0}
    assert call["resume"] is False and call["train"].epochs == 2
    assert call["circuit"].areas["hidden"].channels == 8
    config = call["run_config"]
    assert config["spec"] == "toy" and config["circuit"] == {"width": 8, "rule": "backprop"}
    assert config["train"]["epochs"] == 2 and config["train"]["milestones"] == []
    attrs = call["attrs"]
    assert attrs["source"].startswith("biofa ") and "def circuit" in attrs["spec_source"]
    assert len(attrs["spec_sha256"]) == 64 and attrs["command"] == "python -m biofa.run toy.py"
    assert all(isinstance(v, (str, int, float)) for v in attrs.values())
    assert capsys.readouterr().out == "wrote runs/toy/rule-backprop_seed-0.nc\n"


def test_set_out_and_resume(fit_calls, capsys):
    argv = [
        spec_file(),
        "--set",
        "width=32",
        "rule=fa",
        "--set",
        "lr=1e-3",
        "--out",
        "o",
        "--resume",
    ]
    assert main(argv) == 0
    (call,) = fit_calls
    assert call["circuit"].areas["hidden"].channels == 32
    assert call["train"].lr == 1e-3 and call["resume"] is True
    # width and lr are not the spec's defaults: the name says so (a hash of them)
    cfg = hashlib.sha256(b'{"lr": 0.001, "width": 32}').hexdigest()[:8]
    assert call["out"] == Path(f"o/rule-fa_seed-0_cfg-{cfg}.nc")
    assert capsys.readouterr().out == f"wrote o/rule-fa_seed-0_cfg-{cfg}.nc\n"


def test_quiet(fit_calls, capsys):
    assert main([spec_file(), "-q"]) == 0
    assert capsys.readouterr().out == ""


def test_sweep(fit_calls, capsys):
    spec = spec_file("sweep = grid(rule=['backprop', 'fa'], seed=range(2), width=[4])\n")
    assert main([spec, "--sweep", "--set", "epochs=1"]) == 0
    names = [call["out"].name for call in fit_calls]
    assert names == [
        "rule-backprop_seed-0_width-4.nc",
        "rule-backprop_seed-1_width-4.nc",
        "rule-fa_seed-0_width-4.nc",
        "rule-fa_seed-1_width-4.nc",
    ]
    assert fit_calls[3]["coords"] == {"rule": "fa", "seed": 1, "width": 4}
    assert {call["train"].epochs for call in fit_calls} == {1}
    assert capsys.readouterr().out.count("wrote runs/toy/") == 4


def test_sweep_point_and_dry_run(fit_calls, capsys):
    spec = spec_file("sweep = grid(seed=range(3))\n")
    assert main([spec, "--sweep", "--point", "2"]) == 0
    assert [call["coords"]["seed"] for call in fit_calls] == [2]
    capsys.readouterr()
    assert main([spec, "--sweep", "--dry-run"]) == 0
    assert len(fit_calls) == 1
    assert "2: runs/toy/rule-backprop_seed-2.nc" in capsys.readouterr().out


def test_list_rules(capsys, monkeypatch):
    options = {"backprop": {}, "fa": {"gain": 1.0, "signs": "forward"}}
    monkeypatch.setattr(
        biofa.rules, "get", lambda name: type("Rule", (), {"defaults": options[name]})
    )
    assert main(["--list-rules"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "backprop  the backprop rule",
        "          options: none",
        "fa        the fa rule",
        "          options: gain=1.0, signs='forward'",
    ]


def test_list_rules_shows_every_registered_rule_with_its_defaults(capsys, monkeypatch):
    monkeypatch.undo()  # the real registry
    assert main(["--list-rules"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = biofa.rules.available()
    assert [line.split()[0] for line in lines[::2]] == names and len(lines) == 2 * len(names)
    for name, line in zip(names, lines[1::2]):
        defaults = biofa.rules.get(name).defaults
        expected = ", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "none"
        assert line.strip() == f"options: {expected}"
    assert any("options: " in line and "=" in line for line in lines)  # some rule has options


def test_help(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--set KEY=VALUE" in out and "examples:" in out
    # what --resume needs, what may change, what a run without a checkpoint does, exit status
    text = " ".join(out.split())
    assert (
        "--resume needs that checkpoint (or one written every Train.checkpoint_every steps)" in text
    )
    assert (
        "except epochs, max_steps, checkpoint_every, record_every, eval_every and data_root" in text
    )
    assert "a run with no checkpoint starts from step 0 (said in the log)" in text
    assert "--overwrite" in out and "130 or 143" in text and "--no-model" in out


BAD = {
    "missing spec": (["nope.py"], "spec file not found: nope.py"),
    "no spec": ([], "a SPEC file is required"),
    "spec after --set": (["--set", "a=1", "toy.py"], "--set toy.py: expected KEY=VALUE (put the"),
    "syntax error": (["syntax.py"], "syntax.py:3: syntax error"),
    "import error": (["boom.py"], "boom.py:1: error while loading the spec: ZeroDivisionError"),
    "bad key": (["toy.py", "--set", "widht=3"], "unknown key 'widht' (did you mean 'width'?)"),
    "bad type": (["toy.py", "--set", "epochs=abc"], "--set epochs=abc: expected int"),
    "bad Train value": (["toy.py", "--set", "epochs=0"], "Train.epochs must be positive"),
    "unknown rule": (["toy.py", "--set", "rule=xyz"], "--set rule=xyz: unknown rule 'xyz'"),
    "bad circuit": (["toy.py", "--set", "width=0"], "Units(0): a population needs a positive int"),
    "no =": (["toy.py", "--set", "width"], "--set width: expected KEY=VALUE"),
    "no sweep": (["toy.py", "--sweep"], "--sweep: toy.py defines no `sweep"),
    "point without sweep": (["toy.py", "--point", "1"], "--point I selects a sweep point"),
    "--out a file": (["toy.py", "--out", "r.nc"], "--out r.nc: --out is a directory; each"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_user_errors_are_one_line(case, fit_calls, capsys):
    spec_file()
    Path("syntax.py").write_text("def circuit():\n    return 1\nx = (\n")
    Path("boom.py").write_text("1 / 0\n")
    argv, message = BAD[case]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"biofa: error: {message}")
    assert "Traceback" not in captured.err and not fit_calls


def test_diverged_exits_1(fit_calls, capsys):
    assert main([spec_file(), "--set", "lr=10"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("biofa: error: loss became NaN/inf") and err.count("\n") == 1


def test_diverged_sweep_point_does_not_stop_the_others(fit_calls, capsys):
    assert main([spec_file("sweep = grid(lr=[0.1, 10, 0.2])\n"), "--sweep"]) == 1
    assert len(fit_calls) == 3
    captured = capsys.readouterr()
    assert captured.err.startswith("biofa: error: rule-backprop_seed-0_lr-10.0: loss became")
    assert captured.out.count("wrote") == 2


def test_debug_shows_the_exception(fit_calls):
    with pytest.raises(ValueError, match="unknown key"):
        main([spec_file(), "--set", "foo=1", "--debug"])


def test_subprocess_missing_spec(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "biofa.run", "missing.py"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == "biofa: error: spec file not found: missing.py\n"


JOBS_SPEC = """
import os, sys, types
from pathlib import Path

if os.environ.get("BIOFA_TEST_FAKE_FIT"):
    import biofa.cli.main

    def fit(circuit, train, *, out, coords, run_config, attrs, resume=False, save_model=True):
        if coords["seed"] == 1:
            raise RuntimeError("fake failure of seed 1")
        Path(out).write_text(str(coords))
        return Path(out)

    biofa.cli.main.fit = fit  # this child process's command line trains with it

sweep = grid(seed=range(2))
"""


def test_jobs_runs_points_in_processes(monkeypatch, capsys):
    """``--jobs 2``: each point in its own process; a failed point is reported, others finish."""
    monkeypatch.setenv("BIOFA_TEST_FAKE_FIT", "1")  # read by the spec, in each child process
    monkeypatch.setattr(biofa.cli.main, "fit", biofa.cli.main.fit)  # restored afterwards
    assert main([spec_file(JOBS_SPEC), "--sweep", "--jobs", "2", "--out", "out"]) == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert err[0] == (
        "biofa: error: rule-backprop_seed-1 failed (exit 1): RuntimeError: fake failure of seed 1 "
        "(run with --debug for the traceback) "
        f"[log: {os.path.join('out', 'rule-backprop_seed-1.log')}]"
    )
    assert err[1] == "biofa: error: 1 of 2 runs failed"
    assert captured.out == "wrote out/rule-backprop_seed-0.nc\n"
    assert Path("out/rule-backprop_seed-0.nc").read_text() == "{'rule': 'backprop', 'seed': 0}"
    assert not Path("out/rule-backprop_seed-1.nc").exists()
