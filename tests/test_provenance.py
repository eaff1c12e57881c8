"""Which rule each projection used, and with which options: the ``feedback_rule`` coordinate and
``run_config["feedback"]`` of a run file, on circuits whose answer is written out by hand."""

from __future__ import annotations

import json

import pytest
import xarray as xr

from biofa import Circuit, E, I, Train, compile, conv, dense
from biofa.train import fit
from biofa.train.provenance import FEEDBACK_RULE, feedback_config, projection_labels

pytestmark = pytest.mark.usefixtures("one_thread")
SHORT = Train(max_steps=2, record_every=1, eval_every=2, batch_size=16)


def mixed() -> Circuit:
    """Kolen-Pollack with an option back across h1->h2, feedback alignment (defaults) across
    h2->out, uniform sign feedback across the skip h1->out, nothing across img->h1 (backprop)."""
    c = Circuit("mixed")
    c.input("img")
    c.area("h1", E(12), I(4))
    c.area("h2", E(12), I(4))
    c.readout("out")
    c.connect("img", "h1", dense(flatten=True))
    c.connect("h1", "h2", dense())
    c.connect("h2", "out", dense())
    c.connect("h1", "out", dense())
    c.feedback("h2", "h1", rule="kolen_pollack", signs="free")
    c.feedback("out", "h2", rule="feedback_alignment")
    c.feedback("out", "h1", rule="usf", scale=0.5)
    return c


def direct() -> Circuit:
    """Direct feedback alignment to both hidden areas (a conv one too)."""
    c = Circuit("direct")
    c.input("img")
    c.area("v1", E(6), I(2), pool="max")
    c.area("h", E(12), I(4))
    c.readout("out")
    c.connect("img", "v1", conv(3))
    c.connect("v1", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    c.feedback_everywhere("direct_feedback_alignment", gain=0.5)
    return c


def labels(circuit: Circuit) -> dict[str, str]:
    model = compile(circuit, input_shape=(1, 8, 8), num_classes=10)
    return {p["projection"]: p["feedback_rule"] for p in projection_labels(model)}


def test_feedback_rule_is_the_rule_of_the_pathway_back_across_each_projection():
    assert labels(mixed()) == {
        "img->h1": "backprop",  # no pathway h1 -> img declared
        "h1->h2": "kolen_pollack",  # pathway h2 -> h1
        "h2->out": "feedback_alignment",  # pathway out -> h2
        "h1->out": "usf",  # pathway out -> h1
    }


def test_a_direct_rule_names_the_projections_leaving_the_areas_it_delivers_to():
    assert labels(direct()) == {
        "img->v1": "backprop",  # the input receives nothing, and no pathway reaches it
        "v1->h": "direct_feedback_alignment",  # v1's error comes from the readout directly
        "h->out": "direct_feedback_alignment",
    }


def test_feedback_config_lists_every_pathway_with_its_options_and_defaults():
    assert feedback_config(mixed()) == [
        {"pathway": "h2->h1", "upper": "h2", "lower": "h1", "rule": "kolen_pollack",
         "options": {"gain": None, "signs": "free"}},
        {"pathway": "out->h2", "upper": "out", "lower": "h2", "rule": "feedback_alignment",
         "options": {"gain": None}},
        {"pathway": "out->h1", "upper": "out", "lower": "h1", "rule": "usf",
         "options": {"scale": 0.5, "norm": "none", "concordance": 1.0}},
    ]  # fmt: skip
    everywhere = feedback_config(direct())
    assert [p["pathway"] for p in everywhere] == ["out->v1", "out->h"]  # one per hidden area
    assert all(p["options"] == {"gain": 0.5} for p in everywhere)


def test_a_run_file_records_feedback_rule_and_the_options(tmp_path):
    path = fit(mixed(), SHORT, out=tmp_path / "run.nc")
    with xr.open_dataset(path) as ds:
        rule = ds["feedback_rule"]
        assert rule.dims == ("projection",)
        assert dict(zip(ds.projection.values, rule.values)) == labels(mixed())
        assert rule.attrs["long_name"] == FEEDBACK_RULE
        config = json.loads(ds.run_config.item())
        assert config["feedback"] == json.loads(json.dumps(feedback_config(mixed())))
        assert ds.attrs["circuit"] == "mixed" and ds.attrs["data"] == "digits"
        # the rule coordinate of the run stays what it was: the rules used, joined
        assert ds.rule.item() == "feedback_alignment+kolen_pollack+usf"
        kp = ds.feedback_angle.where(ds.feedback_rule == "kolen_pollack", drop=True)
        assert kp.projection.values.tolist() == ["h1->h2"]


def test_the_command_lines_configuration_gets_the_feedback_too(tmp_path):
    from biofa.cli.main import main

    spec = tmp_path / "spec.py"
    spec.write_text(
        "from biofa import Circuit, E, I, Train, dense\n"
        "def circuit(rule: str = 'feedback_alignment'):\n"
        "    c = Circuit('tiny')\n"
        "    c.input('img')\n"
        "    c.area('h', E(8), I(2))\n"
        "    c.readout('out')\n"
        "    c.connect('img', 'h', dense(flatten=True))\n"
        "    c.connect('h', 'out', dense())\n"
        "    c.feedback_everywhere(rule, gain=2.0)\n"
        "    return c\n"
        "train = Train(max_steps=2, record_every=1, batch_size=16)\n"
    )
    assert main([str(spec), "--out", str(tmp_path / "runs"), "-q"]) == 0
    (path,) = (tmp_path / "runs").glob("*.nc")
    with xr.open_dataset(path) as ds:
        config = json.loads(ds.run_config.item())
        assert config["spec"] == "spec" and config["circuit"] == {"rule": "feedback_alignment"}
        assert config["feedback"] == [
            {"pathway": "h->img", "upper": "h", "lower": "img", "rule": "feedback_alignment",
             "options": {"gain": 2.0}},
            {"pathway": "out->h", "upper": "out", "lower": "h", "rule": "feedback_alignment",
             "options": {"gain": 2.0}},
        ]  # fmt: skip
        assert ds.feedback_rule.values.tolist() == ["feedback_alignment"] * 2
        assert ds.attrs["history"].endswith(ds.attrs["command"])
