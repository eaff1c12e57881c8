"""Fault injection through the command line: bad inputs, bad files, interrupted runs.

Every case asserts what a user must be able to rely on: a non-zero exit, exactly one
``biofa: error:`` line on stderr, no traceback, and nothing lost -- every file that existed
before the command is there afterwards, byte for byte. In-process (``main([...])``) where
possible; in a subprocess where a signal is part of the fault.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from biofa.cli.main import main

ROOT = Path(__file__).resolve().parents[1]

SPEC = """
from biofa import Circuit, E, I, Train, Units, conv, dense, grid


def circuit(width: int = 12, rule: str = "feedback_alignment", deep: bool = False):
    c = Circuit("toy")
    c.input("img")
    if deep:  # 8x8 pooled by 4 twice: nothing left
        c.area("v1", Units(2), pool="max", pool_size=4)
        c.area("v2", Units(2), pool="max", pool_size=4)
        c.connect("img", "v1", conv(3))
        c.connect("v1", "v2", conv(3))
        c.area("h", E(width), I(4))
        c.connect("v2", "h", dense(flatten=True))
    else:
        c.area("h", E(width), I(4))
        c.connect("img", "h", dense(flatten=True))
    c.readout("out")
    c.connect("h", "out", dense())
    c.feedback_everywhere(rule)
    return c


train = Train(epochs=1, max_steps=6, batch_size=32, record_every=3, optimizer="adam", lr=1e-3)
sweep = grid(rule=["feedback_alignment", "backprop"], seed=range(2))
"""

RUN = Path("runs/toy/rule-feedback_alignment_seed-0.nc")


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def image_folder(root: Path, classes: dict[str, list[str]]) -> Path:
    rng = np.random.default_rng(0)
    for split, names in classes.items():
        for name in names:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(3):
                Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L").save(
                    folder / f"{k}.png"
                )
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with the spec and one complete run of it (made once; cases must not change it)."""
    root = tmp_path_factory.mktemp("faults")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        Path("toy.py").write_text(SPEC)
        assert main(["toy.py", "-q"]) == 0 and RUN.exists()
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def ws(workspace, monkeypatch, tmp_path):
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("BIOFA_CACHE", str(tmp_path / "cache"))
    yield workspace
    for extra in ("edited.py", "garbage.py", "boom.py", "syntax.py", "noc.py", "raises.py",
                  "badtrain.py"):  # fmt: skip
        Path(extra).unlink(missing_ok=True)


def expect_one_error(capsys, code: int, argv: list[str], message: str, status: int = 2) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("biofa: error:")]
    assert code == status, (argv, err)
    assert len(lines) == 1, (argv, err)
    assert "Traceback" not in err, err
    assert message in lines[0], (message, lines[0])
    return lines[0]


def write(name: str, text: str | bytes) -> str:
    Path(name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return name


# (argv, what the one error line says); setup functions make the bad file first
CASES = {
    "missing spec": (["nope.py"], "spec file not found: nope.py"),
    "folder as spec": (["runs"], "runs is a folder, not a spec file"),
    "no spec": ([], "a SPEC file is required"),
    "syntax error": ([lambda: write("syntax.py", "def circuit(:\n")], "syntax.py:1: syntax error"),
    "spec raises at import": (
        [lambda: write("boom.py", "x = 1\nraise RuntimeError('no')\n")],
        "boom.py:2: error while loading the spec: RuntimeError: no",
    ),
    "circuit() raises": (
        [lambda: write("raises.py", "def circuit():\n    return {}['x']\n")],
        "raises.py:2: circuit() raised KeyError: 'x'",
    ),
    "no circuit()": ([lambda: write("noc.py", "x = 1\n")], "noc.py: no circuit() function"),
    "circuit() returns nothing": (
        [lambda: write("noc.py", "def circuit():\n    pass\n")],
        "noc.py: circuit() returned NoneType, not a Circuit (does it end with `return c`?)",
    ),
    "spec calls sys.exit": (
        [lambda: write("boom.py", "import sys\nsys.exit(3)\n")],
        "boom.py:2: error while loading the spec: SystemExit: 3",
    ),
    "not UTF-8": ([lambda: write("garbage.py", b"\xff\xfe\x00garbage")], "not UTF-8 text"),
    "train of a wrong type": (
        [lambda: write("badtrain.py", "def circuit():\n    pass\ntrain = 3\n")],
        "`train` must be a Train(...), got int",
    ),
    "unknown key": (["toy.py", "--set", "widht=3"], "unknown key 'widht' (did you mean 'width'?)"),
    "wrong type": (["toy.py", "--set", "epochs=abc"], "--set epochs=abc: expected int"),
    "lr=nan": (["toy.py", "--set", "lr=nan"], "Train.lr must be a finite number, got nan"),
    "lr=inf": (["toy.py", "--set", "lr=inf"], "Train.lr must be a finite number, got inf"),
    "negative momentum": (["toy.py", "--set", "momentum=-0.5"], "Train.momentum=-0.5 must be in"),
    "epochs=0": (["toy.py", "--set", "epochs=0"], "Train.epochs must be positive, got 0"),
    "--set without =": (["toy.py", "--set", "width"], "--set width: expected KEY=VALUE"),
    "--set twice": (["toy.py", "--set", "width=3", "width=4"], "--set width given twice"),
    "unknown rule": (["toy.py", "--set", "rule=xyz"], "--set rule=xyz: unknown rule 'xyz'"),
    "invalid circuit": (["toy.py", "--set", "width=0"], "E(0): a population needs a positive"),
    "shapes that pool to nothing": (["toy.py", "--set", "deep=true"], "max pooling 4x4 of a 2x2"),
    "dry run finds shapes that pool to nothing": (
        ["toy.py", "--dry-run", "--set", "deep=true"],
        "max pooling 4x4 of a 2x2",
    ),
    "no sweep": (
        [lambda: write("noc.py", "def circuit():\n    pass\n"), "--sweep"],
        "noc.py defines no `sweep",
    ),
    "selection keeps no point": (["toy.py", "--sweep", "--set", "seed=7"], "no sweep point has"),
    "--point without --sweep": (["toy.py", "--point", "1"], "--point I selects a sweep point"),
    "--point out of range": (["toy.py", "--sweep", "--point", "9"], "the sweep has points 0 to 3"),
    "--point not selected": (
        ["toy.py", "--sweep", "--point", "0", "--set", "rule=backprop"],
        "--point 0: the --set selection keeps sweep points 2, 3, not 0",
    ),
    "--jobs 0": (["toy.py", "--jobs", "0"], "--jobs 0: expected a positive number"),
    "--point not a number": (["toy.py", "--sweep", "--point", "1,x"], "--point 1,x: expected a"),
    "--point list partly out of range": (
        ["toy.py", "--sweep", "--point", "1,9"],
        "the sweep has points 0 to 3",
    ),
    "--out an existing file": (["toy.py", "--out", "toy.py"], "--out toy.py: is a file, not a"),
    "--out under a file": (["toy.py", "--out", "toy.py/sub"], "toy.py is a file, so the folder"),
    "--out /proc/self": (["toy.py", "--out", "/proc/self"], "--out /proc/self: cannot write there"),
    "--out a .nc": (["toy.py", "--out", "r.nc"], "--out r.nc: --out is a directory"),
    "missing data path": (["toy.py", "--set", "data=/no/such/folder"], "/no/such/folder"),
    "one-class data set": (
        [
            lambda: image_folder(Path("one_class"), {"train": ["a"], "test": ["a"]}),
            "--set",
            "data=one_class",
        ],  # fmt: skip
        "has one class (train/a/); a classifier needs at least two",
    ),
    "zip without test/": (
        [
            lambda: _zip(image_folder(Path("notest"), {"train": ["a", "b"]}), Path("notest.zip")),
            "--set",
            "data=notest.zip",
        ],  # fmt: skip
        "test",
    ),
    "dry run finds a bad data path": (
        ["toy.py", "--dry-run", "--set", "data=/no/such/folder"],
        "/no/such/folder",
    ),
    "huge width": (["toy.py", "--set", "width=2000000000"], "needs at least"),
    "another configuration's file": (
        [lambda: write("edited.py", SPEC.replace("lr=1e-3", "lr=2e-3")), "--out", "runs/toy"],
        "holds another configuration (spec toy -> edited, spec_sha256 ",
    ),
    "not a run file where the run goes": (
        [lambda: _replace_in_copy("bogus", b"not netcdf"), "--out", "copy"],
        "exists and is not a readable biofa run file",
    ),
    "an unfinished run without --resume": (
        [lambda: _replace_in_copy("ckpt", b"state"), "--out", "copy"],
        "holds an unfinished run of this configuration",
    ),
    "truncated checkpoint": (
        [lambda: _checkpoint("truncated"), "--out", "stopped", "--resume"],
        "cannot be read",
    ),
    "random-bytes checkpoint": (
        [lambda: _checkpoint("random"), "--out", "stopped", "--resume"],
        "cannot be read",
    ),
    "resume with another width": (
        [lambda: _checkpoint("ok"), "--out", "stopped", "--resume", "--set", "width=24"],
        "is of another one (circuit.width 12 -> 24)",
    ),
    "resume with another optimizer": (
        [lambda: _checkpoint("ok"), "--out", "stopped", "--resume", "--set", "optimizer=sgd"],
        "(train.optimizer adam -> sgd)",
    ),
    "resume from another spec's checkpoint": (
        [lambda: _checkpoint("other spec"), "--out", "stopped", "--resume"],
        "it was trained with another configuration (",
    ),
    "a run locked by a live process": (
        [lambda: _lock(), "--out", "locked", "--overwrite"],
        "another biofa process",
    ),
}


def _zip(folder: Path, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w") as z:
        for p in sorted(folder.rglob("*")):
            z.write(p, p.relative_to(folder).as_posix())


def _replace_in_copy(what: str, content: bytes) -> None:
    Path("copy").mkdir(exist_ok=True)
    name = RUN.name if what == "bogus" else RUN.with_suffix(".ckpt").name
    if what != "bogus":
        Path("copy", RUN.name).write_bytes(RUN.read_bytes())  # a run file of... another status
        with xr.open_dataset(RUN) as ds:
            ds.load().assign_attrs(status="interrupted: SIGTERM at step 3 of 6").to_netcdf(
                Path("copy", RUN.name)
            )
    Path("copy", name).write_bytes(content)


def _checkpoint(kind: str) -> None:
    """``stopped/``: a run of toy.py stopped by SIGTERM at step 3, its checkpoint then damaged."""
    stopped = Path("stopped")
    ckpt = stopped / RUN.with_suffix(".ckpt").name
    if not ckpt.exists() or kind == "ok":
        for p in stopped.glob("*"):
            p.unlink()
        _stop_at_step(["toy.py", "--out", "stopped", "-q"], 3)
    data = ckpt.read_bytes()
    if kind == "truncated":
        ckpt.write_bytes(data[: len(data) // 3])
    elif kind == "random":
        ckpt.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif kind == "other spec":  # the checkpoint of another spec's run, in this run's place
        write("edited.py", SPEC.replace("width: int = 12", "width: int = 10"))
        other = Path("stopped_other")
        for p in other.glob("*"):
            p.unlink()
        _stop_at_step(["edited.py", "--out", str(other), "-q"], 3)
        ckpt.write_bytes((other / ckpt.name).read_bytes())


def _stop_at_step(argv: list[str], step: int) -> None:
    """Run the command line in-process; this process gets SIGTERM at training step ``step``."""
    from biofa.data import DataSource

    real = DataSource.train_batches

    def batches(*args, **kwargs):
        for n, batch in enumerate(real(*args, **kwargs), 1):
            if n == step:
                os.kill(os.getpid(), signal.SIGTERM)
            yield batch

    DataSource.train_batches = batches
    try:
        assert main(argv) == 143
    finally:
        DataSource.train_batches = real


def _lock() -> None:
    Path("locked").mkdir(exist_ok=True)
    Path("locked", f".{RUN.name}.lock").write_text(f"{socket.gethostname()} {os.getpid()}\n")


@pytest.mark.parametrize("case", list(CASES))
def test_a_fault_is_one_line_and_loses_nothing(case, ws, capsys):
    argv, message = CASES[case]
    argv = list(argv)
    if argv and callable(argv[0]):
        made = argv.pop(0)()
        spec = {
            "syntax error": "syntax.py", "spec raises at import": "boom.py",
            "circuit() raises": "raises.py", "no circuit()": "noc.py", "not UTF-8": "garbage.py",
            "train of a wrong type": "badtrain.py", "no sweep": "noc.py",
            "circuit() returns nothing": "noc.py", "spec calls sys.exit": "boom.py",
            "another configuration's file": "edited.py",
        }.get(case, "toy.py")  # fmt: skip
        argv = [spec, *argv]
        del made
    capsys.readouterr()
    before = snapshot(ws)
    code = main(argv)
    expect_one_error(capsys, code, argv, message)
    after = snapshot(ws)
    lost = [p for p in before if before[p] != after.get(p)]
    assert not lost, f"changed or removed: {lost}"


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30


def run_cli(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "biofa.run", *args]
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.Popen(command, cwd=cwd, **{"env": env, **pipes, **kwargs})


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("biofa: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


SIGNAL_SPEC = (
    SPEC
    + """
import os, signal
if os.environ.get("BIOFA_TEST_SIGNAL_AT"):  # this process signals itself at a training step
    from biofa.data import DataSource

    _real = DataSource.train_batches
    _sig, _at = os.environ["BIOFA_TEST_SIGNAL_AT"].split(":")

    def _batches(*args, **kwargs):
        for n, batch in enumerate(_real(*args, **kwargs), 1):
            if n == int(_at):
                os.kill(os.getpid(), getattr(signal, _sig))
            yield batch

    DataSource.train_batches = _batches
"""
)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_mid_run_then_resume_gives_the_uninterrupted_run(tmp_path, sig):
    """SLURM preemption (SIGTERM) or Ctrl-C at step 4 of 6 with checkpoint_every=0: the record
    and a checkpoint are written, the exit status is 143/130, and --resume gives the numbers of a
    run that was never stopped."""
    (tmp_path / "toy.py").write_text(SIGNAL_SPEC)
    reference = run_cli(["toy.py", "--out", "ref", "-q"], tmp_path)
    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    env = {**os.environ, "BIOFA_TEST_SIGNAL_AT": f"{sig}:4"}
    stopped = run_cli(["toy.py", "--out", "run", "-q"], tmp_path, env=env)
    _, err = stopped.communicate(timeout=600)
    assert stopped.returncode == (143 if sig == "SIGTERM" else 130), err
    assert f"interrupted by {sig} at step 4 of 6" in one_error_line(err)
    run = tmp_path / "run" / RUN.name
    with xr.open_dataset(run) as ds:
        assert ds.attrs["status"] == f"interrupted: {sig} at step 4 of 6"
    assert run.with_suffix(".ckpt").exists()
    resumed = run_cli(["toy.py", "--out", "run", "--resume", "-q"], tmp_path)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    with xr.open_dataset(tmp_path / "ref" / RUN.name) as a, xr.open_dataset(run) as b:
        for name in a.data_vars:
            if name not in ("wall_time", "run_config"):
                np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        assert b.attrs["status"] == "complete" and "resumed at step 4" in b.attrs["resumed"]


def _catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGTERM (biofa's start-up guard, then main)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/<pid>/status")
@pytest.mark.parametrize("when", ["importing torch", "importing the spec"])
def test_ctrl_c_during_start_up_is_one_line(tmp_path, when):
    slow = "import pathlib, time\npathlib.Path('importing').touch()\ntime.sleep(60)\n"
    (tmp_path / "toy.py").write_text(SPEC + (slow if when == "importing the spec" else ""))
    process = run_cli(["toy.py", "--dry-run"], tmp_path)
    deadline = time.time() + 300
    ready = (
        (lambda: (tmp_path / "importing").exists())
        if when == "importing the spec"
        else (lambda: _catches_sigterm(process.pid))
    )
    while not ready():
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 130, err
    assert "interrupted by SIGINT" in one_error_line(err)


def test_ctrl_c_stops_a_local_sweep(tmp_path):
    """--sweep --jobs 2: SIGINT launches no more points, stops the running ones (each writes its
    record and checkpoint) and reports; --resume then finishes every point."""
    (tmp_path / "toy.py").write_text(SIGNAL_SPEC.replace("max_steps=6", "max_steps=100000"))
    sweep = run_cli(["toy.py", "--sweep", "--jobs", "2", "--out", "out", "--set", "epochs=200"],
                    tmp_path)  # fmt: skip
    deadline = time.time() + 300
    while len(list((tmp_path / "out").glob("*.log"))) < 2 or not all(
        "epoch 1/" in p.read_text() for p in (tmp_path / "out").glob("*.log")
    ):
        assert time.time() < deadline and sweep.poll() is None
        time.sleep(0.5)
    sweep.send_signal(signal.SIGINT)
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 130, err
    line = one_error_line(err)
    assert "sweep stopped: 0 of 4 runs finished, 2 stopped with a checkpoint" in line
    assert "2 not started" in line
    assert len(list((tmp_path / "out").glob("*.ckpt"))) == 2
    for nc in (tmp_path / "out").glob("*.nc"):
        with xr.open_dataset(nc) as ds:
            assert ds.attrs["status"].startswith("interrupted: SIGTERM at step")
    assert not [p for p in tmp_path.rglob("*.lock")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_folder_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("toy.py").write_text(SPEC)
    Path("ro").mkdir(mode=0o500)
    code = main(["toy.py", "--out", "ro"])
    expect_one_error(capsys, code, [], "--out ro: cannot write there")


@pytest.fixture
def at_step(monkeypatch):
    """``at_step(n, action)``: call ``action()`` while training batch ``n`` is delivered."""
    from biofa.data import DataSource

    real = DataSource.train_batches

    def arm(n, action):
        def batches(*args, **kwargs):
            for k, batch in enumerate(real(*args, **kwargs), 1):
                if k == n:
                    action()
                yield batch

        monkeypatch.setattr(DataSource, "train_batches", batches)

    return arm


def test_an_out_folder_deleted_mid_run_is_made_again(tmp_path, monkeypatch, capsys, at_step):
    monkeypatch.chdir(tmp_path)
    Path("toy.py").write_text(SPEC)
    at_step(2, lambda: shutil.rmtree("out"))
    assert main(["toy.py", "--out", "out", "--set", "checkpoint_every=3"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    with xr.open_dataset(Path("out", RUN.name)) as ds:
        assert ds.attrs["status"] == "complete"


def test_an_out_folder_replaced_by_a_file_mid_run_is_one_line(tmp_path, monkeypatch, capsys,
                                                              at_step):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    Path("toy.py").write_text(SPEC)

    def replace():
        shutil.rmtree("out")
        Path("out").write_text("in the way")

    at_step(2, replace)
    code = main(["toy.py", "--out", "out"])
    line = expect_one_error(capsys, code, [], "out", status=1)
    assert "out/" in line or "'out'" in line or ": out" in line
    assert Path("out").read_text() == "in the way"
