"""The docs site: generated pages, the code on its pages, and ``mkdocs build --strict``."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import biofa
from biofa import rules
from biofa.cli.main import run
from biofa.measure.metrics import METRICS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def load_gen_pages():
    spec = importlib.util.spec_from_file_location("gen_pages", DOCS / "gen_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = load_gen_pages()


def code_blocks(page: str, language: str = "python") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (DOCS / page).read_text(), re.S)


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------ generated pages
def test_rst_to_md_converts_what_rule_docstrings_use():
    text = """Title line.

    The error returns through ``B``, see :mod:`biofa.rules.usf` and :class:`~biofa.nn.ops.Thing`:

    .. math:: \\delta_{in} = B^\\top \\delta_{out},
              \\qquad x = 1 .

    with :math:`\\theta(a, b)` and a literal ``that spans
    two lines``.

    * item one
      continued
      - nested item
    * item two
    """
    md = gen.rst_to_md(text)
    assert "`B`" in md and "`biofa.rules.usf`" in md and "`Thing`" in md and ":mod:" not in md
    assert "$$\n\\delta_{in} = B^\\top \\delta_{out},\n\\qquad x = 1 .\n$$" in md
    assert "$\\theta(a, b)$" in md
    assert "`that spans\ntwo lines`" in md
    assert "\n* item one\n    continued\n    - nested item\n* item two" in md


@pytest.mark.parametrize("name", rules.available())
def test_every_registered_rule_gets_a_page_with_its_maths_and_options(name):
    cls = rules.get(name)
    page = gen.rule_page(name, cls)
    assert page.startswith(f"# `{name}`") and cls.summary() in page
    assert f'rule="{name}"' in page
    for option in cls.defaults:
        assert f"`{option}=" in page
    module_doc = sys.modules[cls.__module__].__doc__ or ""
    if ".. math::" in module_doc:
        assert "$$" in page and ".. math::" not in page
    assert re.search(r"\(\d{4}\)|\d{4}\)", page), "the page should carry the citation"
    assert f"[`{name}`]({name}.md)" in gen.rules_table()


def test_metrics_table_lists_every_registered_metric_with_units():
    table = gen.metrics_table()
    for name, info in METRICS.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"`{info.units}`" in row and info.long_name in row
        dims = "step, projection)" if info.per == "projection" else "..., step)"
        assert dims in row


# ----------------------------------------------------------------------------- code on the pages
def test_tutorial_spec_and_figure_run(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib").use("Agg")
    blocks = code_blocks("tutorial.md")
    spec_code = next(b for b in blocks if b.startswith("# circuits/tutorial.py"))
    figure_code = next(b for b in blocks if b.startswith("# figure.py"))
    (tmp_path / "circuits").mkdir()
    (tmp_path / "circuits" / "tutorial.py").write_text(spec_code)
    monkeypatch.chdir(tmp_path)
    quick = {"max_steps": 4, "record_every": 2, "eval_every": 2}
    files = run("circuits/tutorial.py", quick, sweep=True)
    assert len(files) == 6 and all(f.parent == Path("runs/tutorial") for f in files)
    ds = biofa.open_runs("runs/tutorial")
    assert dict(ds.sizes) == {"rule": 3, "seed": 2, "step": 2, "projection": 3}
    for block in code_blocks("tutorial.md")[1:]:  # "Looking at the numbers" and the figure
        if "figure.py" in block or "open_runs" in block:
            exec(compile(block, "tutorial.md", "exec"), {})
    assert (tmp_path / "update_angle.png").stat().st_size > 5000
    assert figure_code


def test_analysis_page_snippets_run(tmp_path, monkeypatch):
    spec = (ROOT / "circuits" / "ei_cnn.py").read_text()
    sweep = '\nsweep = grid(rule=["backprop"], seed=range(2))\n'
    spec = re.sub(r"\nsweep = .*", sweep, spec, flags=re.S)  # the spec's last statement
    (tmp_path / "ei_cnn.py").write_text(spec)
    monkeypatch.chdir(tmp_path)
    run("ei_cnn.py", {"width": 4, "max_steps": 4, "record_every": 2, "eval_every": 2}, sweep=True)
    namespace: dict = {}
    for block in code_blocks("analysis.md"):  # one session: later blocks use earlier names
        exec(compile(block, "analysis.md", "exec"), namespace)
    assert len(namespace["table"]) == 1  # one rule


def test_adding_a_rule_example_registers_and_trains(tmp_path, monkeypatch):
    from biofa import Circuit, E, I, Train, dense
    from biofa.rules import registry
    from biofa.train import fit

    (code,) = [b for b in code_blocks("adding-a-rule.md") if b.startswith("# sparse_fa.py")]
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # keep the real one
    module = types.ModuleType("sparse_fa")  # as if imported from the user's sparse_fa.py
    monkeypatch.setitem(sys.modules, "sparse_fa", module)
    exec(compile(code, "sparse_fa.py", "exec"), module.__dict__)
    namespace = module.__dict__
    assert "sparse_feedback_alignment" in rules.available()
    c = Circuit("mlp")
    c.input("image")
    c.area("h", E(12), I(4))
    c.readout("out")
    c.connect("image", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    c.feedback_everywhere("sparse_feedback_alignment", density=0.5)
    train = Train(max_steps=4, record_every=2, eval_every=4, batch_size=16)
    import xarray as xr

    with xr.open_dataset(fit(c, train, out=tmp_path / "run.nc")) as ds:
        assert ds.rule.item() == "sparse_feedback_alignment"
        concordance = ds.sign_concordance.sel(projection="h->out").isel(step=-1).item()
    assert 0.1 < concordance < 0.5  # half the entries are 0, half the rest agree in sign
    page = load_gen_pages().rule_page(
        "sparse_feedback_alignment", namespace["SparseFeedbackAlignment"]
    )
    assert "$$" in page and "density=0.25" in page


def test_adding_a_data_set_example_registers_and_trains(tmp_path, monkeypatch):
    import xarray as xr

    import biofa.data
    from biofa.data import registry

    blocks = code_blocks("adding-a-data-set.md")
    (spec,) = [b for b in blocks if b.startswith("# blobs.py")]
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # leave it alone
    (tmp_path / "blobs.py").write_text(spec)
    monkeypatch.chdir(tmp_path)
    (path,) = run("blobs.py", {})  # the CLI imports the spec, which registers "blobs"
    assert "blobs" in biofa.data.available()
    assert biofa.data.describe("blobs") == "three noisy 8x8 patterns"
    with xr.open_dataset(path) as ds:
        assert ds.attrs["status"] == "complete"
        assert json.loads(ds.run_config.item())["train"]["data"] == "blobs"
        assert ds.test_accuracy.dropna("step").isel(step=-1).item() > 0.9  # chance: 1/3
    run("blobs.py", {"max_steps": 2})  # imported again: registering the same loader is fine
    namespace: dict = {}
    for block in blocks:
        if not block.startswith("# blobs.py"):
            exec(compile(block, "adding-a-data-set.md", "exec"), namespace)
    assert namespace["quick"].n_train == 120
    assert torch.bincount(namespace["quick"].train_labels).tolist() == [40, 40, 40]


# ------------------------------------------------------------------------------------ the build
def test_mkdocs_build_strict(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module)
    mkdocs = shutil.which("mkdocs")
    command = [mkdocs] if mkdocs else [sys.executable, "-m", "mkdocs"]
    site = tmp_path / "site"
    result = subprocess.run(
        [*command, "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in rules.available():
        assert (site / "rules" / name / "index.html").exists(), name
    output = (site / "output-format" / "index.html").read_text()
    for name in METRICS:
        assert f"<code>{name}</code>" in output, name
    index = (site / "index.html").read_text()
    assert ('href="benchmarks/"' in index) == (DOCS / "benchmarks.md").exists()


# ------------------------------------------------------------------- extension pages' examples
def _exec_block(page: str, first_line: str, name: str, monkeypatch) -> dict:
    (code,) = [b for b in code_blocks(page) if b.startswith(first_line)]
    module = types.ModuleType(name)  # as if imported from the user's file
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(code, f"{name}.py", "exec"), module.__dict__)
    return module.__dict__


def test_adding_a_metric_example_is_computed_and_written(tmp_path, monkeypatch):
    import xarray as xr

    from biofa import Circuit, Train, Units, dense
    from biofa.measure import registry
    from biofa.train import fit

    monkeypatch.setattr(registry, "METRICS", dict(registry.METRICS))  # keep the real one
    _exec_block("adding-a-metric.md", "# my_metrics.py", "my_metrics", monkeypatch)
    c = Circuit("mlp")
    c.input("image")
    c.area("h", Units(12))
    c.readout("out")
    c.connect("image", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    c.feedback_everywhere("feedback_alignment")
    path = fit(c, Train(max_steps=3, record_every=3, batch_size=16), out=tmp_path / "run.nc")
    with xr.open_dataset(path) as ds:
        sn = ds.weight_spectral_norm.sel(projection="h->out").isel(step=-1).item()
        ratio = ds.error_norm_ratio.sel(projection="h->out").isel(step=-1).item()
        assert ds.weight_spectral_norm.attrs["long_name"] == "largest singular value of W"
        assert ds.error_norm_ratio.attrs["units"] == "1"
        assert ds.error_norm_ratio.sel(projection="image->h").isnull().all()  # no error at input
    assert sn > 0 and 0 < ratio < 10


def test_adding_an_op_kind_example_equals_a_1x1_convolution(monkeypatch):
    import torch
    import torch.nn.functional as F

    from biofa import Circuit, Units, compile, conv, dense

    namespace = _exec_block("adding-an-op-kind.md", "# pointwise.py", "pointwise", monkeypatch)
    pointwise = namespace["pointwise"]

    def net(kind, rule):
        c = Circuit("pw")
        c.input("image")
        c.area("v1", Units(5), pool="max")
        c.readout("out")
        c.connect("image", "v1", kind)
        c.connect("v1", "out", dense(flatten=True))
        c.feedback_everywhere(rule)
        return c

    x, y = torch.randn(4, 3, 6, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 1])
    for rule in ("backprop", "feedback_alignment"):
        ours = compile(net(pointwise(), rule), input_shape=(3, 6, 6), num_classes=3).double()
        ref = compile(net(conv(1), rule), input_shape=(3, 6, 6), num_classes=3).double()
        with torch.no_grad():  # the same numbers: the 1x1 kernel is the pointwise matrix
            ref.groups["image__to__v1"].weight.copy_(
                ours.groups["image__to__v1"].weight.view(5, 3, 1, 1)
            )
            for k, v in ours.groups["v1__to__out"].feedback.items():
                ref.groups["v1__to__out"].feedback[k].copy_(v)
            ref.groups["v1__to__out"].weight.copy_(ours.groups["v1__to__out"].weight)
        assert ours.shapes["v1"] == ref.shapes["v1"]
        for model in (ours, ref):
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()
        w_ours = ours.groups["image__to__v1"].weight.grad
        w_ref = ref.groups["image__to__v1"].weight.grad.view(5, 3)
        torch.testing.assert_close(w_ours, w_ref, rtol=1e-10, atol=1e-12)
