"""``circuits/dann_rules.py`` as a real (tiny) sweep through the command line, and the tables of
``analyses/dann_tables.py`` against the numbers in its run files."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from biofa.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("dann_rules")
    source = (ROOT / "circuits" / "dann_rules.py").read_text()
    source = source.replace('Path(__file__).with_name("dann_mlp.py")',
                            f'Path("{ROOT}/circuits/dann_mlp.py")')  # fmt: skip
    rules = '["backprop", "feedback_alignment"]'
    sweep = (f'\nsweep = grid(model="dann", lr=[0.1, 0.01], rule={rules}, sign_norm="none", '
             f'seed=range(2)) + grid(model="mlp", lr=[0.2, 0.02], rule={rules}, '
             'sign_norm="none", seed=range(2)) + grid(model="mlp", lr=[0.2, 0.02], rule="usf", '
             'sign_norm="init", seed=range(2))\n')  # fmt: skip
    source = re.sub(r"\nsweep = .*", sweep, source, flags=re.S)
    spec = tmp / "dann_rules.py"
    spec.write_text(source)
    out = tmp / "runs"
    argv = [str(spec), "--sweep", "--out", str(out), "-q", "--set", "data=digits_pixels",
            "inputs=64", "width=10", "interneurons=2", "max_steps=12", "record_every=6",
            "eval_every=6", "train_subset=0", "validation=300"]  # fmt: skip
    assert main(argv) == 0
    assert len(list(out.glob("*.nc"))) == 20
    return out


def test_rules_table_numbers_are_the_runs(runs, capsys):
    argv = sys.argv
    sys.argv = ["dann_tables.py", "rules", str(runs)]
    try:
        runpy.run_path(str(ROOT / "analyses" / "dann_tables.py"), run_name="__main__")
    finally:
        sys.argv = argv
    text = capsys.readouterr().out
    lines = text.strip().splitlines()
    header = [h.strip() for h in lines[0].split("|")]
    assert header[1:3] == ["rule", "MLP (Units): acc. %"] and "DANN: acc. %" in header
    assert [line.split("|")[1].strip() for line in lines[2:]] == [
        "backprop", "feedback_alignment", "usf, norm=init"
    ]  # fmt: skip
    assert lines[4].split("|")[header.index("DANN: acc. %")].strip() == "not run"
    # the DANN feedback-alignment cell: the rate of the best mean final validation accuracy,
    # and the test accuracies of that rate's runs
    val: dict[float, list[float]] = {}
    test: dict[float, list[float]] = {}
    for path in runs.glob("*.nc"):
        with xr.open_dataset(path) as ds:
            if ds.model.item() == "dann" and ds.rule.item() == "feedback_alignment":
                lr = float(ds.lr.item())
                val.setdefault(lr, []).append(float(ds.validation_accuracy.values.ravel()[-1]))
                test.setdefault(lr, []).append(float(ds.test_accuracy.values.ravel()[-1]))
    assert sorted(val) == [0.01, 0.1] and all(len(v) == 2 for v in test.values())
    best = max(val, key=lambda lr: np.mean(val[lr]))
    col = header.index("DANN: acc. %")
    cell, lr_cell = (lines[3].split("|")[col + k].strip() for k in (0, 1))
    assert float(lr_cell) == pytest.approx(best)
    mean, sd = (float(v) for v in cell.split(" ± "))
    assert mean == pytest.approx(100 * np.mean(test[best]), abs=0.051)
    assert sd == pytest.approx(100 * np.std(test[best], ddof=1), abs=0.051)
