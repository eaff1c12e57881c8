"""The docs site: generated pages, the code on its pages, and ``mkdocs build --strict``."""

from __future__ import annotations

import importlib.util
import json
import os
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


def test_rst_to_md_links_literal_blocks_and_references():
    text = """Written with :func:`register` through `submitit <https://example.org/s>`_::

        [project.entry-points."biofa.rules"]
        my_rule = "pkg:Rule"

    Then more text.
    """
    md = gen.rst_to_md(text, lambda target, shown: f"<{target}|{shown}>")
    assert md.startswith(
        "Written with <register|register> through [submitit](https://example.org/s):"
    )
    assert '\n```\n[project.entry-points."biofa.rules"]\nmy_rule = "pkg:Rule"\n```\n' in md
    assert md.rstrip().endswith("Then more text.")
    ref = gen.link_reference("biofa.circuit.graph.Circuit", "Circuit")
    assert ref == (
        '<autoref identifier="biofa.circuit.graph.Circuit" optional><code>Circuit</code></autoref>'
    )


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
    assert f"[`{name}`]({name}.md)" in gen.rules_table()  # the site: the generated page
    committed = gen.rules_table(for_site=False)  # GitHub: the source file, with the maths
    assert f"[`{name}`](../../biofa/rules/{name}.py)" in committed


def test_metrics_table_lists_every_registered_metric_with_units():
    table = gen.metrics_table()
    for name, info in METRICS.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"`{info.units}`" in row and info.long_name in row
        dims = "step, projection)" if info.per == "projection" else "..., step)"
        assert dims in row


REGIONS = {
    "rules/index.md": "rules-table",
    "output-format.md": "metrics-table",
    "configuration.md": "train-fields",
}


def test_generated_tables_are_real_text_and_up_to_date():
    for page, name in REGIONS.items():
        text = (DOCS / page).read_text()
        match = gen.REGION.search(text)
        assert match and match["name"] == name, page
        assert match["body"].count("\n|") > 3, f"{page}: the {name} region holds no table"
    assert not re.search(
        r"<!-- biofa:[a-z-]+ -->", "".join(p.read_text() for p in DOCS.rglob("*.md"))
    )
    stale = [p.relative_to(ROOT).as_posix() for p in gen.update(check=True)]
    assert not stale, (
        f"generated tables out of date in {stale}: run python docs/gen_pages.py --update"
    )


def test_update_rewrites_a_stale_region_only():
    page = "configuration.md"
    text = (DOCS / page).read_text()
    stale = gen.REGION.sub(lambda m: m["start"] + "| old |\n" + m["end"], text)
    assert stale != text and gen.fill(stale, page) == text
    assert gen.fill("no regions here\n", page) == "no regions here\n"
    with pytest.raises(ValueError, match="unknown generated region 'nope'"):
        gen.fill("<!-- biofa:nope:start -->\n<!-- biofa:nope:end -->", page)


def test_train_table_lists_every_field_with_type_default_and_meaning():
    import dataclasses

    table = gen.train_table()
    rows = {line.split("|")[1].strip(" `"): line for line in table.splitlines()[2:]}
    fields = dataclasses.fields(biofa.Train)
    assert list(rows) == [f.name for f in fields]
    for f in fields:
        _, _, type_, default, meaning, _ = rows[f.name].split("|")
        assert type_.strip() == f"`{f.type}`", f.name
        assert default.strip().strip("`") in (repr(f.default), f'"{f.default}"'), f.name
        assert len(meaning.strip()) > 8 and ":class:" not in meaning and "``" not in meaning
    assert '| `data` | `str` | `"digits"` | A registered data set' in table
    assert "| `lr` | `float` | `0.05` | see `optimizer` |" in table


def test_every_train_field_must_be_described(monkeypatch):
    monkeypatch.setattr(gen, "numpy_parameters", lambda doc: {})
    with pytest.raises(ValueError, match="Train.data is not described in Train's docstring"):
        gen.train_table()


def test_update_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(DOCS / "gen_pages.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


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
    # imported again: registering the same loader is fine (another folder: another configuration)
    run("blobs.py", {"max_steps": 2}, out="again")
    namespace: dict = {}
    for block in blocks:
        if not block.startswith("# blobs.py"):
            exec(compile(block, "adding-a-data-set.md", "exec"), namespace)
    assert namespace["quick"].n_train == 120
    assert torch.bincount(namespace["quick"].train_labels).tolist() == [40, 40, 40]


def test_concepts_input_kind_e_makes_every_weight_obey_dale():
    (block,) = [b for b in code_blocks("concepts.md") if 'kind="E"' in b]
    namespace: dict = {}
    exec(compile(block, "concepts.md", "exec"), namespace)
    circuit = namespace["c"]
    model = biofa.compile(circuit, input_shape=(1, 8, 8), num_classes=10)
    signs = {}
    for piece, group in model.projection_slices():
        w = group.weight[:, piece.start : piece.stop].detach()
        signs[piece.projection] = (bool((w >= 0).all()), bool((w < 0).any()))
    assert signs["image->h"] == (True, False)  # the pixels' weights: all >= 0
    # the default input ("Units") leaves the first projection unconstrained
    default = biofa.Circuit("default_input")
    default.input("image")
    default.area("h", biofa.E(32), biofa.I(8))
    default.readout("out")
    default.connect("image", "h", biofa.dense(flatten=True))
    default.connect("h", "out", biofa.dense())
    model = biofa.compile(default, input_shape=(1, 8, 8), num_classes=10)
    ((piece, group),) = [(p, g) for p, g in model.projection_slices() if p.source == "image"]
    w = group.weight[:, piece.start : piece.stop].detach()
    assert bool((w < 0).any()) and bool((w > 0).any())


def test_configuration_page_example_and_error_message():
    (block,) = code_blocks("configuration.md")
    namespace: dict = {}
    exec(compile(block, "configuration.md", "exec"), namespace)
    assert namespace["quick"].max_steps == 40 and namespace["quick"].lr == 1e-3
    page = (DOCS / "configuration.md").read_text()
    with pytest.raises(ValueError) as error:
        biofa.Train(optimizer="lbfgs")
    assert f"`ValueError: {error.value}`" in page


# ------------------------------------------------------------------------------------ the build
def load_docs_module(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mathjax = load_docs_module("mathjax_assets")


def mkdocs_command() -> list[str]:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module)
    return [sys.executable, "-m", "mkdocs"]  # this interpreter, so this checkout's biofa


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """``mkdocs build --strict`` of the whole site, once for the tests below."""
    command = mkdocs_command()
    if shutil.which("npm") is None and not (mathjax.CACHE / mathjax.SCRIPT).is_file():
        pytest.skip(mathjax.INSTALL_HINT)
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [*command, "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return site


def test_mkdocs_build_strict(site):
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


RAW_REST = re.compile(r":(?:class|func|meth|mod|math|data|attr|obj|exc):|\.\. math::|<autoref")


def test_api_page_renders_rest_roles_as_links_and_maths(site):
    api = (site / "api" / "index.html").read_text()
    assert not RAW_REST.findall(api), sorted(set(RAW_REST.findall(api)))
    # :func:`angle` in feedback_angle's docstring links to angle's entry on the same page
    assert re.search(r'<a class="autorefs[^"]*"[^>]*href="#biofa\.measure\.metrics\.angle">', api)
    # :class:`~biofa.circuit.graph.Circuit` (canonical path) links to the documented alias
    assert re.search(r'href="#biofa\.circuit\.Circuit"><code>Circuit</code></a>', api)
    assert api.count('class="arithmatex"') >= 10  # .. math:: blocks and :math: roles
    assert 'id="biofa.spiking.validate.validate"' in api  # was hidden by its module's name
    for name in rules.available():  # rule pages use the same converter
        page = (site / "rules" / name / "index.html").read_text()
        assert not RAW_REST.findall(page), (name, sorted(set(RAW_REST.findall(page))))


EXTERNAL = re.compile(
    r"<(script|link|img|iframe)\b[^>]*?\b(?:src|href)=\"((?:https?:)?//[^\"]+)\"[^>]*>"
)


def test_site_loads_nothing_from_other_hosts_and_serves_mathjax(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) > 10
    for page in pages:
        loaded = [m.group(0) for m in EXTERNAL.finditer(page.read_text())]
        assert not loaded, (
            page.relative_to(site),
            loaded,
        )  # links <a href> to other sites are fine
    script = site / mathjax.SCRIPT
    assert script.stat().st_size > 500_000, "MathJax's combined component"
    assert list((site / mathjax.SITE_PATH / "output/chtml/fonts/woff-v2").glob("*.woff"))
    assert (site / mathjax.SITE_PATH / "input/tex/extensions/boldsymbol.js").is_file()
    api = (site / "api" / "index.html").read_text()
    assert '<script src="../assets/mathjax/tex-mml-chtml.js"></script>' in api
    notebook = (site / "notebooks" / "01_first_circuit" / "index.html").read_text()
    assert "Load mathjax" not in notebook  # nbconvert's MathJax 2 from a CDN, removed
    assert '<script src="../../assets/mathjax/tex-mml-chtml.js"></script>' in notebook


def test_notebooks_are_in_the_site_with_their_stored_outputs(site):
    nav = (site / "index.html").read_text()
    for name in ("01_first_circuit", "02_comparing_rules", "03_spiking_validation"):
        page = (site / "notebooks" / name / "index.html").read_text()
        assert page.count('src="data:image/png;base64,') >= 1, name  # the stored figure
        assert "test accuracy" in page or "rate correlation" in page, name  # stored text output
        assert (site / "notebooks" / name / f"{name}.ipynb").is_file()  # the download
        assert f'href="notebooks/{name}/"' in nav, name  # in the nav, under Tutorials
    assert "cdn.jsdelivr" not in (ROOT / "mkdocs.yml").read_text()


def test_docs_build_without_npm_stops_with_one_line(tmp_path):
    command = mkdocs_command()
    empty = tmp_path / "bin"  # a PATH with no npm (python itself is called by its full path)
    empty.mkdir()
    result = subprocess.run(
        [*command, "build", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "PATH": str(empty),
            "BIOFA_DOCS_CACHE": str(tmp_path / "cache"),  # an empty cache
            "NO_MKDOCS_2_WARNING": "1",
        },
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "install Node.js with npm" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_mathjax_extract_keeps_the_site_files_and_checks_the_hash(tmp_path):
    import io
    import tarfile

    tarball = tmp_path / "mathjax.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name in (
            "es5/tex-mml-chtml.js",
            "es5/output/chtml/fonts/woff-v2/a.woff",
            "es5/tex-svg.js",
            "es5/node-main.js",
            "README.md",
            "es5/ui/menu.js",
        ):
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(name)
            tar.addfile(info, io.BytesIO(name.encode()))
    mathjax._extract(tarball, tmp_path / "out")
    kept = sorted(p.relative_to(tmp_path / "out").as_posix() for p in tmp_path.rglob("out/**/*.*"))
    assert kept == ["output/chtml/fonts/woff-v2/a.woff", "tex-mml-chtml.js", "ui/menu.js"]
    with pytest.raises(mathjax.MathJaxUnavailable, match="is not the pinned sha512"):
        mathjax._check_integrity(tarball)


def test_griffe_extension_converts_docstrings_in_place():
    griffe = pytest.importorskip("griffe")
    extensions = griffe.load_extensions(str(DOCS / "griffe_rst.py"))
    package = griffe.load("biofa", search_paths=[str(ROOT)], extensions=extensions)
    train = package["train.config.Train"].docstring.value
    assert ":class:" not in train and "``" not in train
    link = '<autoref identifier="biofa.train.optim.BatchManhattan" optional>'
    assert link in train
    angle = package["measure.metrics.angle"].docstring.value
    assert "$$" in angle and ".. math::" not in angle
    loop = package["train.loop"].docstring.value  # :class:`~biofa.measure.record.Recorder`
    assert (
        '<autoref identifier="biofa.measure.record.Recorder" optional><code>Recorder</code>' in loop
    )
