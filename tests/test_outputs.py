"""What the command line does to the files already in ``--out`` (``biofa.cli.outputs``): its own
earlier file is replaced, another configuration's never (unless ``--overwrite``), ``--resume``
skips complete runs, one process per run file; and the progress bar and log lines."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest
import xarray as xr

import biofa.train.loop
from biofa.cli import outputs
from biofa.cli.main import main

SPEC = """
from biofa import Circuit, E, I, Train, dense, grid


def circuit(width: int = 12, rule: str = "feedback_alignment"):
    c = Circuit("toy")
    c.input("img")
    c.area("h", E(width), I(4))
    c.readout("out")
    c.connect("img", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    c.feedback_everywhere(rule)
    return c


train = Train(epochs=1, max_steps=4, batch_size=32, record_every=2)
sweep = grid(rule=["feedback_alignment", "backprop"], seed=range(2))
"""

PLAIN = Path("runs/toy/rule-feedback_alignment_seed-0.nc")


@pytest.fixture(autouse=True)
def toy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("toy.py").write_text(SPEC)


def config(path: Path) -> str:
    with xr.open_dataset(path) as ds:
        return str(ds.run_config.values.reshape(-1)[0])


def test_runs_that_differ_in_a_setting_never_share_a_file():
    assert main(["toy.py", "-q"]) == 0
    first = PLAIN.read_bytes()
    assert main(["toy.py", "-q", "--set", "lr=0.01"]) == 0
    assert main(["toy.py", "-q", "--set", "width=8"]) == 0
    files = sorted(p.name for p in PLAIN.parent.glob("*.nc"))
    assert len(files) == 3 and PLAIN.name in files and PLAIN.read_bytes() == first
    assert all(name == PLAIN.name or "_cfg-" in name for name in files)


def test_a_rerun_replaces_its_own_file_and_says_so(caplog):
    assert main(["toy.py", "-q"]) == 0
    model = PLAIN.with_name(PLAIN.stem + ".model.pt")
    assert model.exists()
    with caplog.at_level(logging.INFO):
        assert main(["toy.py"]) == 0
    assert f"{PLAIN}: replacing this configuration's earlier file" in caplog.text
    assert model.exists()


def test_overwrite_replaces_another_configurations_file(capsys):
    assert main(["toy.py", "-q"]) == 0
    Path("toy.py").write_text(SPEC.replace("record_every=2", "record_every=4"))
    assert main(["toy.py", "-q"]) == 2  # record_every is not in the name: same file, refused
    assert "train.record_every 2 -> 4" in capsys.readouterr().err
    assert main(["toy.py", "-q", "--overwrite"]) == 0
    assert '"record_every": 4' in config(PLAIN)


def test_resume_skips_a_complete_run_and_refuses_to_extend_one_without_a_checkpoint(capsys, caplog):
    assert main(["toy.py", "-q"]) == 0
    before = PLAIN.read_bytes()
    with caplog.at_level(logging.INFO):
        assert main(["toy.py", "--resume"]) == 0
    assert f"{PLAIN} is complete: nothing to resume" in caplog.text
    assert PLAIN.read_bytes() == before and "wrote" not in capsys.readouterr().out
    assert main(["toy.py", "--resume", "--set", "max_steps=8"]) == 2
    err = capsys.readouterr().err
    assert "is complete and has no checkpoint to continue from (train.max_steps 4 -> 8)" in err
    assert PLAIN.read_bytes() == before


def test_resume_with_nothing_there_starts_at_step_0(caplog):
    assert main(["toy.py", "--resume", "-q"]) == 0
    assert f"no checkpoint {PLAIN.with_suffix('.ckpt')}: starting from step 0" in caplog.text


def test_a_sweep_selection_runs_only_the_selected_points(capsys):
    assert main(["toy.py", "--sweep", "--set", "rule=backprop", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 run(s) of toy:" in out and "  2: runs/toy/rule-backprop_seed-0.nc (new)" in out
    assert "  3: runs/toy/rule-backprop_seed-1.nc (new)" in out
    assert "digits: 1437 training images of shape (1, 8, 8), 10 classes;" in out
    assert not Path("runs").exists()  # a dry run writes nothing, not even the folder
    assert main(["toy.py", "--sweep", "--set", "rule=backprop", "seed=1", "-q"]) == 0
    assert [p.name for p in Path("runs/toy").glob("*.nc")] == ["rule-backprop_seed-1.nc"]


def test_the_dry_run_says_what_each_run_would_do(capsys):
    assert main(["toy.py", "-q"]) == 0
    capsys.readouterr()
    assert main(["toy.py", "--dry-run", "--set", "lr=0.01"]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert "rule-feedback_alignment_seed-0_cfg-" in line and line.endswith("(new; lr=0.01)")
    assert main(["toy.py", "--dry-run"]) == 0
    assert f"  0: {PLAIN} (replaces its earlier file)" in capsys.readouterr().out
    assert main(["toy.py", "--dry-run", "--resume"]) == 0
    assert f"  0: {PLAIN} (complete: skipped with --resume)" in capsys.readouterr().out


def test_one_process_per_run_file_and_a_dead_processes_lock_is_taken_over(tmp_path):
    run = tmp_path / "x.nc"
    with outputs.RunLock(run) as lock:
        assert lock.path.read_text().strip() == f"{socket.gethostname()} {os.getpid()}"
        with pytest.raises(ValueError, match=r"x\.nc: another biofa process \(.* is training"):
            outputs.RunLock(run).__enter__()
    assert not lock.path.exists()
    child = os.fork() if hasattr(os, "fork") else None
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)  # a pid that is no longer alive
    lock.path.write_text(f"{socket.gethostname()} {child}\n")
    with outputs.RunLock(run):
        assert lock.path.read_text().strip().endswith(str(os.getpid()))
    lock.path.write_text(f"another-host {os.getpid()}\n")
    with pytest.raises(ValueError, match="another-host"):
        outputs.RunLock(run).__enter__()


def test_out_checks(tmp_path):
    outputs.check_out_dir(tmp_path / "new" / "deep", create=False)
    assert not (tmp_path / "new").exists()
    outputs.check_out_dir(tmp_path / "new" / "deep")
    assert (tmp_path / "new" / "deep").is_dir() and not list((tmp_path / "new" / "deep").iterdir())


def test_the_progress_bar_stays_shows_the_loss_and_log_lines_go_around_it(monkeypatch):
    made = []

    class Bar(biofa.train.loop.tqdm):
        def __init__(self, *args, **kwargs):
            made.append(self)
            self.kwargs, self.postfixes = kwargs, []
            super().__init__(*args, **kwargs)

        def set_postfix(self, *args, **kwargs):
            self.postfixes.append(kwargs)
            super().set_postfix(*args, **kwargs)

    handlers = []
    real_log_epoch = biofa.train.loop._log_epoch

    def log_epoch(*args):
        handlers.extend(type(h).__name__ for h in logging.getLogger().handlers)
        real_log_epoch(*args)

    monkeypatch.setattr(biofa.train.loop, "tqdm", Bar)
    monkeypatch.setattr(biofa.train.loop, "_log_epoch", log_epoch)
    assert main(["toy.py", "-q", "--set", "max_steps=0", "record_every=10"]) == 0
    (bar,) = made
    assert bar.kwargs["leave"] is True
    steps = 45  # digits: 1437 images in batches of 32, one epoch
    assert len(bar.postfixes) == steps // 10 + 1  # at record steps only (and the last step)
    assert all(float(p["loss"]) > 0 and p["refresh"] is False for p in bar.postfixes)
    # the command line's console handler writes through tqdm while the bar is up
    assert "_TqdmLoggingHandler" in handlers and "StreamHandler" not in handlers, handlers
