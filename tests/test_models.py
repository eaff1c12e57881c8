"""Trained models kept beside their runs: ``<run>.model.pt`` (``weights_only=True``), rebuilt by
``biofa.load_model`` without the spec, evaluated on other data by ``biofa.evaluate``."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch
import xarray as xr
from small_circuits import small_ei_cnn, two_hidden_mlp

import biofa
from biofa import E, I, Train
from biofa.cli.spec import load_spec, run_points
from biofa.data import InMemoryDataSet, load
from biofa.nn import declaration
from biofa.train import fit

ROOT = Path(__file__).resolve().parents[1]
TRAIN = Train(epochs=1, batch_size=64, optimizer="adam", lr=1e-2, record_every=5)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "rule-fa_seed-3.nc"
    return fit(small_ei_cnn(), TRAIN.replace(seed=3, hold_weight_norms=True), out=out,
               coords={"rule": "fa", "seed": 3}, run_config={"spec": "toy"})  # fmt: skip


def test_a_completed_run_keeps_its_model_loadable_with_weights_only(run):
    path = run.with_name("rule-fa_seed-3.model.pt")
    stored = torch.load(path, weights_only=True)
    assert stored["format"] == "biofa-model" and stored["input_shape"] == [1, 8, 8]
    assert stored["num_classes"] == 10 and stored["seed"] == 3 and stored["held_norms"] is True
    assert stored["data"]["name"] == "digits" and len(stored["data"]["mean"]) == 1
    assert stored["run"]["config"] == {"spec": "toy"} and stored["run"]["step"] == 23


def test_load_model_rebuilds_the_trained_network(run):
    model = biofa.load_model(run)  # the run's .nc finds its model
    assert isinstance(model, biofa.CompiledCircuit) and not model.training
    assert model.circuit.name == "small" and model.input_shape == (1, 8, 8)
    assert model.num_classes == 10 and model.info["data"]["classes"][:2] == ["0", "1"]
    stored = torch.load(run.with_name("rule-fa_seed-3.model.pt"), weights_only=True)
    state = model.state_dict()
    assert state.keys() == stored["state_dict"].keys()
    assert all(torch.equal(state[k], stored["state_dict"][k]) for k in state)
    # its test accuracy is the one the run recorded at its last step
    with xr.open_dataset(run) as ds:
        recorded = float(ds.test_accuracy.squeeze().dropna("step")[-1])
    assert biofa.evaluate(model, "digits") == recorded
    assert biofa.evaluate(run.with_name("rule-fa_seed-3.model.pt"), load("digits")) == recorded


def test_evaluate_refuses_data_that_does_not_fit(run):
    model = biofa.load_model(run)

    def data(shape, classes):
        x = torch.randint(0, 255, (20, *shape), dtype=torch.uint8)
        y = torch.arange(20) % classes
        return InMemoryDataSet("other", x, y, x, y, tuple(map(str, range(classes))),
                               (0.5,) * shape[0], (0.2,) * shape[0])  # fmt: skip

    with pytest.raises(ValueError, match=r"^data 'other' has images of shape \(3, 8, 8\) \(C, H, "
                                         r"W\); the model was built for \(1, 8, 8\)$"):  # fmt: skip
        biofa.evaluate(model, data((3, 8, 8), 10))
    with pytest.raises(ValueError, match=r"^data 'other' has 4 classes; the model has 10 outputs"):
        biofa.evaluate(model, data((1, 8, 8), 4))
    with pytest.raises(ValueError, match="normalization='none' must be 'model' or 'data'"):
        biofa.evaluate(model, "digits", normalization="none")
    assert 0 <= biofa.evaluate(model, data((1, 8, 8), 10), normalization="data") <= 1


def test_load_model_errors_are_one_line(tmp_path, run):
    with pytest.raises(ValueError, match=r"^model file not found: .*nope\.model\.pt \(a run that"):
        biofa.load_model(tmp_path / "nope.nc")
    (tmp_path / "bad.model.pt").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match=r"^model file .*bad\.model\.pt cannot be read \("):
        biofa.load_model(tmp_path / "bad.model.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.model.pt")
    with pytest.raises(ValueError, match=r"other\.model\.pt is not a biofa model file$"):
        biofa.load_model(tmp_path / "other.model.pt")
    stored = torch.load(run.with_name("rule-fa_seed-3.model.pt"), weights_only=True)
    first = next(iter(stored["state_dict"]))
    stored["state_dict"][first] = torch.zeros(1)  # a tensor of the wrong shape
    torch.save(stored, tmp_path / "broken.model.pt")
    with pytest.raises(ValueError, match=r"broken\.model\.pt: its circuit cannot be rebuilt \("):
        biofa.load_model(tmp_path / "broken.model.pt")


def test_save_model_false_keeps_none(tmp_path):
    fit(small_ei_cnn(), TRAIN.replace(max_steps=3), out=tmp_path / "run.nc", save_model=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nc"]


@pytest.mark.parametrize("spec", sorted(p.name for p in (ROOT / "circuits").glob("*.py")))
def test_every_example_circuit_round_trips_through_its_declaration(spec):
    loaded = load_spec(ROOT / "circuits" / spec)
    for point in run_points(loaded, {}, sweep=loaded.sweep is not None)[:8]:
        data = declaration.encode(point.circuit)
        rebuilt = declaration.decode(data)
        assert type(rebuilt) is type(point.circuit) and vars(rebuilt) == vars(point.circuit)
        assert declaration.fingerprint(rebuilt) == declaration.fingerprint(point.circuit)


def test_a_declaration_of_an_unknown_class_is_refused():
    data = declaration.encode(small_ei_cnn())
    data["object"] = "not_a_module:Circuit"
    with pytest.raises(ValueError, match=r"uses Circuit from module 'not_a_module', which is not"):
        declaration.decode(data)


@pytest.mark.spiking
@pytest.mark.skipif(importlib.util.find_spec("brian2") is None, reason="needs brian2")
def test_spiking_validate_takes_a_model_file(tmp_path):
    from biofa.spiking import validate

    mlp = two_hidden_mlp("feedback_alignment", ((E(16), I(4)), (E(8), I(2))))
    run = fit(mlp, TRAIN.replace(max_steps=10), out=tmp_path / "run.nc")
    ds = validate(run.with_name("run.model.pt"), "digits", n_images=4, copies=4, duration=0.05,
                  target="numpy")  # fmt: skip
    assert ds.attrs["circuit"] == "mlp" and ds.sizes["image"] == 4


def test_the_running_page_example_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "docs" / "running.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", text, re.S)
    monkeypatch.chdir(tmp_path)
    fit(small_ei_cnn(), TRAIN.replace(max_steps=5),
        out=Path("runs/toy/rule-feedback_alignment_seed-0.nc"))  # fmt: skip
    namespace: dict = {}
    exec(compile(block, "running.md", "exec"), namespace)
    assert 0 <= namespace["accuracy"] <= 1
    assert capsys.readouterr().out.strip() == "small (1, 8, 8) 10 digits"
