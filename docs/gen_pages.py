"""Pages and tables generated from the code: one page per registered rule, and the tables of rules,
metrics and ``Train`` fields written into the Markdown pages.

Used as a mkdocs hook (``hooks:`` in ``mkdocs.yml``), so a newly registered rule or metric appears
in the next ``mkdocs build`` with nothing to edit:

* ``on_config`` expands the nav entry ``rules/index.md`` into a section with one page per rule of
  :func:`biofa.rules.available` and links ``benchmarks.md`` when that page exists;
* ``on_files`` adds the generated ``rules/<name>.md`` pages (nothing is written to ``docs/``);
* ``on_page_markdown`` regenerates every region between ``<!-- biofa:NAME:start ... -->`` and
  ``<!-- biofa:NAME:end -->`` (``rules-table``, ``metrics-table``, ``train-fields``).

The regions are real text in the committed pages too, so the tables read on GitHub:
``python docs/gen_pages.py --update`` rewrites them from the registries (``--check`` only says
which are stale; ``tests/test_docs.py`` fails when one is). ``python docs/gen_pages.py OUT_DIR``
writes the generated pages to ``OUT_DIR`` to look at them. Rule pages show the rule module's
docstring (the maths and the citation, DESIGN section 4), converted from reStructuredText to
Markdown by :func:`rst_to_md`, the converter ``docs/griffe_rst.py`` applies to the API pages.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import inspect
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RULES_INDEX = "rules/index.md"


def _load_sibling(name: str):
    """``docs/<name>.py`` as a module (``docs/`` is not a package, nor on ``sys.path``)."""
    spec = importlib.util.spec_from_file_location(f"biofa_docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_rst = _load_sibling("rst_md")
code_reference, link_reference, rst_to_md = _rst.code_reference, _rst.link_reference, _rst.rst_to_md
inline = _rst.inline


# ---------------------------------------------------------------------------------- rule pages
def this_checkout() -> None:
    """Put this checkout first on ``sys.path``: the site documents its biofa, whichever biofa is
    installed (mkdocs restores ``sys.path`` after loading a hook, so this runs in the hooks)."""
    if sys.path[:1] != [str(ROOT)]:
        sys.path.insert(0, str(ROOT))


def _rules() -> dict[str, type]:
    this_checkout()
    from biofa import rules

    return {name: rules.get(name) for name in rules.available()}


def _options(cls: type) -> str:
    if not cls.defaults:
        return "none"
    return ", ".join(f"`{k}={v!r}`" for k, v in cls.defaults.items())


def _direct(cls: type) -> bool:
    from biofa.rules import DirectFeedbackRule

    return issubclass(cls, DirectFeedbackRule)


def _scope(cls: type) -> str:
    if _direct(cls):
        return "direct: the readout's error reaches each hidden area through the rule's own tensors"
    return "layer-wise: the rule's feedback replaces W on the way back along one pathway"


def _capabilities(cls: type) -> str:
    from biofa import rules

    kinds = (rules.AfterStep, rules.CustomErrorPath, rules.CrossesNonlinearity, rules.Probes,
             rules.NativeBackward)  # fmt: skip
    return ", ".join(f"`{k.__name__}`" for k in kinds if issubclass(cls, k)) or "none"


def _ops(cls: type) -> str:
    return ", ".join(f"`{t.__name__}`" for t in getattr(cls, "supports", ())) or "(area-level)"


def rule_page(name: str, cls: type) -> str:
    """The Markdown page of rule ``name``: summary, facts, usage and the module docstring."""
    module = sys.modules.get(cls.__module__)
    doc = inspect.getdoc(module) if module is not None else None
    doc = doc or inspect.getdoc(cls) or "(no documentation)"
    if _direct(cls):
        one = (f'c.feedback("out", "v1", rule="{name}")', "# the readout's error straight to v1")
    else:
        one = (f'c.feedback("v2", "v1", rule="{name}")', "# the pathway carrying v2's error to v1")
    usage = [one]
    usage.append((f'c.feedback_everywhere("{name}")', "# every pathway not declared otherwise"))
    width = max(len(code) for code, _ in usage) + 2
    return "\n".join(
        [
            f"# `{name}`",
            "",
            f"*{cls.summary()}*",
            "",
            "| | |",
            "|---|---|",
            f"| delivery | {_scope(cls)} |",
            f"| capabilities | {_capabilities(cls)} |",
            f"| ops | {_ops(cls)} |",
            f"| options (defaults) | {_options(cls)} |",
            f"| implemented in | `{cls.__module__}.{cls.__qualname__}` |",
            "",
            "```python",
            *[code.ljust(width) + comment for code, comment in usage],
            "```",
            "",
            f"or, for a spec whose `circuit()` takes a `rule` keyword: "
            f"`python -m biofa.run SPEC --set rule={name}`.",
            "",
            "## Definition",
            "",
            rst_to_md(doc, link_reference),
        ]
    )


def rules_table(for_site: bool = True, page: str = RULES_INDEX) -> str:
    """Every registered rule: name, scope, options, summary.

    On the site (``for_site``) each name links to its generated page; in the committed Markdown
    (read on GitHub, where the generated pages do not exist) to the rule's source file, whose
    docstring holds the maths. ``page``: the page the table is on (links are relative to it).
    """
    here = (DOCS / page).parent
    rows = ["| rule | delivery | options | summary |", "|---|---|---|---|"]
    for name, cls in _rules().items():
        target = DOCS / "rules" / f"{name}.md" if for_site else _source(cls)
        title = f"`{name}`"
        if target is not None:
            title = f"[{title}]({Path(os.path.relpath(target, here)).as_posix()})"
        delivery = "direct" if _direct(cls) else "layer-wise"
        rows.append(f"| {title} | {delivery} | {_options(cls)} | {cls.summary()} |")
    return "\n".join(rows) + "\n"


def _source(cls: type) -> Path | None:
    """The file defining ``cls`` if it is in this checkout (a plug-in rule's is not)."""
    file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if file is None or not Path(file).resolve().is_relative_to(ROOT):
        return None
    return Path(file).resolve()


# ------------------------------------------------------------------------------ metrics table
def metrics_table() -> str:
    """Every registered metric: name, dims, units, long name and definition (rules' own metrics
    included)."""
    from biofa.measure import registered

    dims = {
        "run": "(rule, seed, ..., step)",
        "projection": "(rule, seed, ..., step, projection)",
    }
    rows = ["| variable | dims | units | long_name | definition |", "|---|---|---|---|---|"]
    for name, info in registered().items():
        definition = ""
        if info.fn is not None and info.fn.__doc__:
            first = inspect.getdoc(info.fn).split("\n\n")[0]
            definition = " ".join(inline(line.strip()) for line in first.splitlines())
        definition = definition or _RUN_DEFINITIONS.get(name, "")
        units = f"`{info.units}`"
        rows.append(
            f"| `{name}` | `{dims[info.per]}` | {units} | {info.long_name} | {definition} |"
        )
    return "\n".join(rows) + "\n"


_RUN_DEFINITIONS = {
    "loss": "mean cross-entropy over the training batches since the previous record",
    "train_accuracy": "fraction of training examples classified correctly since the previous "
    "record",
    "test_accuracy": "fraction of the test set classified correctly (every `eval_every` steps, "
    "or every epoch, and at the end)",
    "learning_rate": "the forward optimiser's learning rate at the step (after the schedule)",
    "wall_time": "seconds since training started (a resumed run continues the count)",
}


# --------------------------------------------------------------------------- Train's fields
def train_table() -> str:
    """Every field of ``Train``: name, type, default and its description from the docstring."""
    this_checkout()
    from biofa.train.config import Train

    described = numpy_parameters(inspect.getdoc(Train) or "")
    fields = dataclasses.fields(Train)
    first: dict[str, str] = {}  # the first field (in field order) of each docstring group
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for f in fields:
        if f.name not in described:
            raise ValueError(
                f"Train.{f.name} is not described in Train's docstring (its Parameters section): "
                f"the Configuration page lists every field"
            )
        group, text = described[f.name]
        lead = first.setdefault(group, f.name)
        meaning = text if lead == f.name else f"see `{lead}`"
        rows.append(f"| `{f.name}` | `{f.type}` | {_default(f)} | {_cell(meaning)} |")
    return "\n".join(rows) + "\n"


def numpy_parameters(doc: str) -> dict[str, tuple[str, str]]:
    """``{name: (group, Markdown description)}`` of a NumPy docstring's Parameters section; names
    described together (``epochs, batch_size``) share ``group`` (the first name of the line)."""
    lines = doc.splitlines()
    try:
        start = (
            next(
                i
                for i, line in enumerate(lines[:-1])
                if line.strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}
            )
            + 2
        )
    except StopIteration:
        return {}
    entries: list[tuple[list[str], list[str]]] = []
    for i in range(start, len(lines)):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and set(lines[i + 1].strip()) == {"-"}:
            break  # the next section
        if line.strip() and not line[0].isspace():
            entries.append(([n.strip() for n in line.split(":")[0].split(",")], []))
        elif entries:
            entries[-1][1].append(line)
    out = {}
    for names, body in entries:
        text = " ".join(rst_to_md("\n".join(body)).split())
        out.update({name: (names[0], text) for name in names})
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        return "required"
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return f"`{json.dumps(value) if isinstance(value, str) else repr(value)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# ---------------------------------------------------------------------- generated regions
REGION = re.compile(
    r"(?P<start><!-- biofa:(?P<name>[a-z-]+):start\b[^>]*-->\n)(?P<body>.*?)"
    r"(?P<end><!-- biofa:(?P=name):end -->)",
    re.S,
)
START = "<!-- biofa:{name}:start (generated: python docs/gen_pages.py --update) -->"
END = "<!-- biofa:{name}:end -->"


def region_text(name: str, page: str, for_site: bool = False) -> str:
    """The generated Markdown of region ``name`` on ``page`` (a path relative to ``docs/``)."""
    makers: dict[str, Callable[[], str]] = {
        "rules-table": lambda: rules_table(for_site, page),
        "metrics-table": metrics_table,
        "train-fields": train_table,
    }
    if name not in makers:
        raise ValueError(f"{page}: unknown generated region {name!r} (known: {', '.join(makers)})")
    return makers[name]()


def fill(markdown: str, page: str, for_site: bool = False) -> str:
    """``markdown`` with every generated region (between its start and end markers) rewritten."""

    def sub(m: re.Match) -> str:
        body = region_text(m["name"], page, for_site)
        return f"{m['start']}\n{body}\n{m['end']}"

    return REGION.sub(sub, markdown)


def pages_with_regions() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if REGION.search(p.read_text()))


def update(check: bool = False) -> list[Path]:
    """Rewrite the generated regions of ``docs/*.md`` (or, with ``check``, only list the stale
    pages). Returns the pages that changed or would change."""
    stale = []
    for path in pages_with_regions():
        text = path.read_text()
        new = fill(text, path.relative_to(DOCS).as_posix())
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new)
    return stale


# ---------------------------------------------------------------------------------- mkdocs hooks
def on_config(config, **kwargs):
    """Expand the rules entry of the nav into one page per rule; link benchmarks.md if present."""
    nav = config.get("nav")
    if not nav:
        return config
    pages = [{"Overview": RULES_INDEX}] + [{name: f"rules/{name}.md"} for name in _rules()]
    for i, entry in enumerate(nav):
        if isinstance(entry, dict):
            ((title, target),) = entry.items()
            if target == RULES_INDEX:
                nav[i] = {title: pages}
    docs_dir = Path(config["docs_dir"])
    mentioned = str(nav)
    if (docs_dir / "benchmarks.md").exists() and "benchmarks.md" not in mentioned:
        nav.append({"Benchmarks": "benchmarks.md"})
    return config


def on_files(files, config, **kwargs):
    """Add the generated ``rules/<name>.md`` pages."""
    from mkdocs.structure.files import File

    for name, cls in _rules().items():
        path = f"rules/{name}.md"
        if files.get_file_from_path(path) is None:
            files.append(File.generated(config, path, content=rule_page(name, cls)))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    """Regenerate the page's generated regions, so the site is current even when the committed
    text is not (``tests/test_docs.py`` fails on stale committed text)."""
    return fill(markdown, page.file.src_uri, for_site=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python docs/gen_pages.py",
        description="Write the generated tables into docs/*.md (--update), check them (--check), "
        "or write the generated rule pages and tables to OUT_DIR to look at them.",
    )
    parser.add_argument("out", nargs="?", help="preview folder (default: site-preview)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--update", action="store_true", help="rewrite stale generated regions")
    action.add_argument("--check", action="store_true", help="exit 1 if a region is stale")
    args = parser.parse_args(argv)
    if args.update or args.check:
        stale = update(check=args.check)
        for path in stale:
            print(f"{'stale' if args.check else 'updated'}: {path.relative_to(ROOT)}")
        if args.check and stale:
            print("run: python docs/gen_pages.py --update", file=sys.stderr)
            return 1
        return 0
    out = Path(args.out or "site-preview")
    (out / "rules").mkdir(parents=True, exist_ok=True)
    for rule_name, rule_cls in _rules().items():
        (out / "rules" / f"{rule_name}.md").write_text(rule_page(rule_name, rule_cls))
    (out / "metrics-table.md").write_text(metrics_table())
    (out / "rules-table.md").write_text(rules_table())
    (out / "train-fields.md").write_text(train_table())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
