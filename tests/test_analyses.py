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


# -------------------------------------------------------------- one convention, one-line errors
def validation_file(path: Path) -> Path:
    """A small spiking validation file built by hand (``biofa.spiking.dataset.build``, no Brian2):
    two populations of 3 and 2 neurons, 4 images, 2 classes, one hidden area's error."""
    from biofa.spiking import dataset

    rng = np.random.default_rng(0)
    rate = rng.uniform(0, 50, (4, 5))
    ds = dataset.build(
        time=np.arange(0.0025, 0.1, 0.005),
        population_rate=rng.uniform(0, 50, (20, 4, 2)),
        populations=["h.e", "h.i"],
        forward={"population": np.array(["h.e"] * 3 + ["h.i"] * 2), "area": np.array(["h"] * 5),
                 "count": rate * 0.08, "rate": rate, "activation": rate / 40,
                 "expected": rate * 1.1},
        errors={"areas": np.array(["h"]), "area": np.array(["h"] * 3),
                "rate_model": rng.normal(size=(4, 3)), "spiking": rng.normal(size=(4, 3)),
                "positive": rng.uniform(0, 9, (4, 3)), "negative": rng.uniform(0, 9, (4, 3)),
                "correlation": np.array([0.93]), "gain": np.array([30.0])},
        readout={"label": np.array([0, 1, 1, 0]), "error_target": np.array([0, 1, 1, 0]),
                 "prediction_rate_model": np.array([0, 1, 0, 0]),
                 "prediction_spiking": np.array([0, 1, 1, 0]), "logits_rate_model": np.ones((4, 2)),
                 "logits_spiking": np.ones((4, 2)), "error": np.zeros((4, 2))},
        scalars={"class_agreement": (0.75, "agreement")},
        calibration={"gain": (np.array([40.0, 60.0]), "gain", "Hz")},
        raster={"time": np.array([0.01, 0.03, 0.05]), "neuron": np.array([0, 3, 4]),
                "image": np.array([0, 0, 1])},
        images=np.arange(4),
        attrs={"settle": 0.02},
    )  # fmt: skip
    return dataset.write(ds, path)


def test_every_script_takes_its_input_and_output_as_positional_arguments(tmp_path):
    path = validation_file(tmp_path / "spiking.nc")
    out = tmp_path / "figures" / "spiking.png"
    run_script("spiking_validation", str(path), str(out))
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 5000
    docs = (ROOT / "docs" / "analysis.md").read_text()
    assert "python analyses/spiking_validation.py runs/spiking.nc figures/" in docs
    for script in (*SCRIPTS, "spiking_validation"):
        source = (ROOT / "analyses" / f"{script}.py").read_text()
        assert '"-o"' not in source and 'add_argument("out", nargs="?"' in source, script


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_empty_or_missing_runs_folder_is_one_line_and_exit_2(script, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for where, said in (("empty", r"no run files \(\*\.nc\) in "), ("nowhere", "no such file")):
        with pytest.raises(SystemExit) as caught:
            run_script(script, str(tmp_path / where), str(tmp_path / "out.png"))
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert re.match(rf"{script}\.py: error: open_runs: .*{said}", err), err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("script", (*SCRIPTS, "spiking_validation"))
def test_without_matplotlib_the_scripts_say_which_extra_to_install(script, tmp_path, capsys,
                                                                   monkeypatch):  # fmt: skip
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import raises ImportError
    with pytest.raises(SystemExit) as caught:
        run_script(script, str(tmp_path), str(tmp_path / "out.png"))
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err == f"{script}.py: error: needs matplotlib: pip install 'biofa[viz]'\n"


def test_a_file_that_is_no_validation_is_one_line_and_exit_2(sweep, tmp_path, capsys):
    for path, said in ((next(sweep.glob("*.nc")), "is not a spiking validation file"),
                       (tmp_path / "none.nc", "cannot open")):  # fmt: skip
        with pytest.raises(SystemExit) as caught:
            run_script("spiking_validation", str(path), str(tmp_path / "out.png"))
        err = capsys.readouterr().err
        assert caught.value.code == 2 and err.count("\n") == 1 and said in err, err
