"""A real 2 rules x 2 seeds sweep through the CLI: open_runs combines it, skips a broken file with a
warning, and the analysis scripts draw their figures from it."""

from __future__ import annotations

import re
import runpy
import shutil
import sys
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")  # the "viz" extra
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import biofa  # noqa: E402
from biofa.cli.main import main  # noqa: E402
from biofa.cli.names import config_hash  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("compare_rules", "alignment_dynamics", "sign_concordance")
RULES = ["backprop", "feedback_alignment"]
CFG = "_cfg-" + config_hash({"width": 4})  # --set width=4 is not the spec's default


pytestmark = pytest.mark.usefixtures("one_thread")


def run_script(script: str, *args: str) -> None:
    """``python analyses/<script>.py ARGS``, in this process (torch is already imported)."""
    argv = sys.argv
    sys.argv = [f"{script}.py", *args]
    try:
        runpy.run_path(str(ROOT / "analyses" / f"{script}.py"), run_name="__main__")
    finally:
        sys.argv = argv
        plt.close("all")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """``circuits/ei_cnn.py`` with a 2 x 2 sweep and a few steps, run by the command line
    (``biofa.cli.main.main``, in this process: a subprocess would spend its time importing
    torch)."""
    tmp = tmp_path_factory.mktemp("sweep")
    source = (ROOT / "circuits" / "ei_cnn.py").read_text()
    sweep = f"\nsweep = grid(rule={RULES!r}, seed=range(2))\n"
    source = re.sub(r"\nsweep = .*", sweep, source, flags=re.S)
    spec = tmp / "ei_cnn.py"
    spec.write_text(source)
    out = tmp / "runs" / "ei_cnn"
    argv = [str(spec), "--sweep", "--out", str(out), "-q",
            "--set", "width=4", "max_steps=12", "record_every=4", "eval_every=4"]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in out.glob("*.nc")) == [
        f"rule-{rule}_seed-{seed}{CFG}.nc" for rule in RULES for seed in (0, 1)
    ]
    return out


def test_open_runs_gives_one_dataset_with_rule_seed_step_projection(sweep):
    ds = biofa.open_runs(sweep)
    assert dict(ds.sizes) == {"rule": 2, "seed": 2, "step": 3, "projection": 4}
    assert ds.rule.values.tolist() == RULES and ds.seed.values.tolist() == [0, 1]
    assert ds.step.values.tolist() == [4, 8, 12]
    for name in ("feedback_angle", "error_angle", "update_angle", "sign_concordance"):
        assert ds[name].dims == ("rule", "seed", "step", "projection")
        assert ds[name].attrs["long_name"] and ds[name].attrs["units"]
    for name in ("loss", "train_accuracy", "test_accuracy", "learning_rate", "wall_time"):
        assert ds[name].dims == ("rule", "seed", "step") and "units" in ds[name].attrs
    assert (ds.status == "complete").all()
    np.testing.assert_allclose(ds.update_angle.sel(rule="backprop"), 0.0, atol=1e-6)
    assert (ds.update_angle.sel(rule="feedback_alignment", projection="v1->v2") > 1).all()


def test_a_broken_or_unfinished_run_is_skipped_with_a_warning(sweep, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(sweep, runs)
    victim = runs / f"rule-feedback_alignment_seed-1{CFG}.nc"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])  # a crash while copying / a full disk
    with xr.open_dataset(runs / f"rule-backprop_seed-0{CFG}.nc") as one:
        running = one.load()
    running.attrs["status"] = "running"  # a run file whose writer never finished
    running.to_netcdf(runs / f"rule-backprop_seed-0{CFG}.nc")
    with pytest.warns(UserWarning, match="skipping") as caught:
        ds = biofa.open_runs(runs)
    messages = " ".join(str(w.message) for w in caught)
    assert f"rule-feedback_alignment_seed-1{CFG}.nc" in messages and "cannot open" in messages
    assert f"rule-backprop_seed-0{CFG}.nc" in messages and "'running'" in messages
    assert dict(ds.sizes) == {"rule": 2, "seed": 2, "step": 3, "projection": 4}
    assert ds.loss.sel(rule="feedback_alignment", seed=1).isnull().all()
    assert ds.loss.sel(rule="backprop", seed=0).isnull().all()
    assert ds.loss.sel(rule="feedback_alignment", seed=0).notnull().all()
    assert ds.loss.sel(rule="backprop", seed=1).notnull().all()


@pytest.mark.parametrize(("script", "suffix"), zip(SCRIPTS, (".pdf", ".png", ".png")))
def test_analysis_scripts_write_their_figures(sweep, tmp_path, script, suffix):
    out = tmp_path / "figures" / f"{script}{suffix}"
    run_script(script, str(sweep), str(out))
    assert out.stat().st_size > 5000, out
    assert out.read_bytes()[:4] == (b"%PDF" if suffix == ".pdf" else b"\x89PNG")


def test_analysis_scripts_default_to_runs_ei_cnn(sweep, tmp_path, monkeypatch):
    shutil.copytree(sweep, tmp_path / "runs" / "ei_cnn")
    monkeypatch.chdir(tmp_path)
    run_script("sign_concordance")
    assert (tmp_path / "analyses" / "figures" / "sign_concordance.png").exists()


def test_analysis_scripts_are_short():
    for script in SCRIPTS:
        code = [
            line
            for line in (ROOT / "analyses" / f"{script}.py")
            .read_text()
            .split('"""', 2)[2]
            .splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        assert len(code) <= 40, (script, len(code))
