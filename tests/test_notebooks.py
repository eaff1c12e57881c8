"""The tutorial notebooks (docs/notebooks/) run from top to bottom and show what their text says.

Each is executed in a fresh kernel in a temporary folder by ``docs/notebooks/execute.py`` (the
script that stores their outputs), with one more cell appended that checks the claims of the
notebook's text on the notebook's own variables.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "docs" / "notebooks"

pytest.importorskip("nbclient", reason="the notebook tests need the dev extra (nbclient)")
pytest.importorskip("ipykernel", reason="the notebook tests need the dev extra (ipykernel)")


def load_execute():
    spec = importlib.util.spec_from_file_location("notebooks_execute", NOTEBOOKS / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


execute = load_execute()

# What each notebook's text says, as assertions on its variables.
CHECKS = {
    "01_first_circuit.ipynb": """
assert accuracy > 0.9, accuracy  # "about 0.95 on the 360 test digits"
carried = ["h1->h2", "h2->out"]
first, final = (angles.sel(projection=carried).isel(step=i) for i in (0, -1))
assert ((first - final) > 10).all() and ((first - final) < 25).all(), (first.values, final.values)
assert (updates.sel(projection=["image->h1", "h1->h2"]).isel(step=-1) < 60).all()
assert float(updates.sel(projection="h2->out").isel(step=-1)) < 1e-3  # the readout's update: exact
assert angles.sel(projection="image->h1").isnull().all()  # no error is sent to the pixels
""",
    "02_comparing_rules.ipynb": """
acc = summary.mean_value  # not summary["mean"]: .mean of a Dataset is its method
assert float(acc.min()) > 0.8, acc.values
assert acc.idxmax().item() == "backprop"
assert float(acc.sel(rule="backprop") - acc.min()) < 0.06, acc.values  # "within about five points"
carried = ["h1->h2", "h2->out"]
fa, kp = last.sel(rule="feedback_alignment"), last.sel(rule="kolen_pollack")
assert (kp.sel(projection=carried) < fa.sel(projection=carried) - 15).all(), (kp.values, fa.values)
assert (last.sel(rule="backprop", projection=carried) < 1e-3).all()  # backprop's B is W
assert last.sel(rule="direct_feedback_alignment").isnull().all()
""",
    "03_spiking_validation.ipynb": """
assert float((predictions == data.test_y).float().mean()) > 0.85
assert (abs(ds.rate_correlation - 0.97) < 0.02).all(), ds.rate_correlation.values  # "about 0.97"
assert float(ds.class_agreement) > 0.9  # "almost every image the same way"
assert float(ds.accuracy_spiking) > 0.8
assert (ds.error_correlation > 0.9).all(), ds.error_correlation.values  # "above 0.9"
""",
}


def test_every_notebook_is_checked_and_stored_small():
    names = [p.name for p in execute.notebooks()]
    assert names == sorted(CHECKS) and len(names) >= 3
    nbformat = pytest.importorskip("nbformat")
    for path in execute.notebooks():
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        executed = [c.execution_count for c in code]
        assert executed == list(range(1, len(code) + 1)), f"{path.name}: stored unexecuted"
        assert code[-1].outputs, f"{path.name}: the last cell's output is not stored"
        for cell in code:
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, (path.name, errors)
            streams = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stderr")
            assert "Warning" not in streams and "Traceback" not in streams, (path.name, streams)
        assert path.stat().st_size < 150_000, f"{path.name}: keep stored outputs small"


def run_notebook(name: str, tmp_path, monkeypatch):
    if name.startswith("03_"):
        pytest.importorskip("brian2", reason="needs brian2 (pip install biofa[spiking])")
    pytest.importorskip("matplotlib", reason="the notebooks plot (pip install biofa[viz])")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one torch thread: the CI machine is shared
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = execute.execute(NOTEBOOKS / name, tmp_path, extra_cells=[CHECKS[name]])
    # the checks ran in the kernel (an AssertionError fails execute with the cell's traceback)
    assert nb.cells[-1].source == CHECKS[name]
    return nb


def test_first_circuit_notebook(tmp_path, monkeypatch):
    run_notebook("01_first_circuit.ipynb", tmp_path, monkeypatch)
    assert (tmp_path / "runs" / "first_circuit").is_dir()


@pytest.mark.slow
def test_comparing_rules_notebook(tmp_path, monkeypatch):
    run_notebook("02_comparing_rules.ipynb", tmp_path, monkeypatch)
    assert len(list((tmp_path / "runs" / "compare_rules").glob("*.nc"))) == 8


@pytest.mark.spiking
def test_spiking_validation_notebook(tmp_path, monkeypatch):
    run_notebook("03_spiking_validation.ipynb", tmp_path, monkeypatch)
