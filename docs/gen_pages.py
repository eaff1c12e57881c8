"""Pages generated from the code: one per registered rule, and the output-format tables.

Used as a mkdocs hook (``hooks:`` in ``mkdocs.yml``), so a newly registered rule or metric appears
in the next ``mkdocs build`` with nothing to edit:

* ``on_config`` expands the nav entry ``rules/index.md`` into a section with one page per rule of
  :func:`biofa.rules.available` and links ``benchmarks.md`` when that page exists;
* ``on_files`` adds the generated ``rules/<name>.md`` pages (nothing is written to ``docs/``);
* ``on_page_markdown`` replaces ``<!-- biofa:rules-table -->`` and ``<!-- biofa:metrics-table -->``
  with tables built from the rule registry and :data:`biofa.measure.metrics.METRICS`.

``python docs/gen_pages.py OUT_DIR`` writes the generated pages to ``OUT_DIR`` to look at them.
Rule pages show the rule module's docstring (the maths and the citation, DESIGN section 4),
converted from reStructuredText to Markdown by :func:`rst_to_md`.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

RULES_TABLE = "<!-- biofa:rules-table -->"
METRICS_TABLE = "<!-- biofa:metrics-table -->"
RULES_INDEX = "rules/index.md"

_ROLE = re.compile(r":(?:mod|class|func|meth|attr|data|obj|exc):`(~?)([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_LITERAL = re.compile(r"``([^`]+?)``")
_LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d+\.)\s")


def rst_to_md(text: str) -> str:
    """The reStructuredText of a docstring as Markdown (with ``pymdownx.arithmatex`` maths).

    Handles what rule docstrings use: ``.. math::`` blocks (-> ``$$ ... $$``), ``:math:`` roles
    (-> ``$...$``), cross-reference roles and ````literals```` (-> code), and list nesting
    (reST indents nested items by 2 spaces, Markdown needs 4).
    """
    lines = _inline(inspect.cleandoc(text)).splitlines()  # roles may span lines
    out: list[str] = []
    i = 0
    in_list = False
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if _LIST_ITEM.match(line) and indent == 0:
            in_list = True
        elif not stripped:
            pass
        elif indent == 0:
            in_list = False
        pad = " " * (2 * indent if in_list else indent)
        if stripped.startswith(".. math::"):
            body = [stripped[len(".. math::") :].strip()]
            i += 1
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
                body.append(lines[i])
                i += 1
            maths = [b.strip() for b in body if b.strip()]  # whitespace means nothing in TeX
            out += ["", f"{pad}$$"] + [f"{pad}{m}" for m in maths] + [f"{pad}$$", ""]
            continue
        out.append(pad + stripped if stripped else "")
        i += 1
    return "\n".join(out).strip() + "\n"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _inline(text: str) -> str:
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
    text = _ROLE.sub(lambda m: f"`{m.group(2).split('.')[-1] if m.group(1) else m.group(2)}`", text)
    return _LITERAL.sub(lambda m: f"`{m.group(1)}`", text)


# ---------------------------------------------------------------------------------- rule pages
def _rules() -> dict[str, type]:
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
            rst_to_md(doc),
        ]
    )


def rules_table() -> str:
    rows = ["| rule | delivery | options | summary |", "|---|---|---|---|"]
    for name, cls in _rules().items():
        delivery = "direct" if _direct(cls) else "layer-wise"
        rows.append(f"| [`{name}`]({name}.md) | {delivery} | {_options(cls)} | {cls.summary()} |")
    return "\n".join(rows) + "\n"


# ------------------------------------------------------------------------------ metrics table
def metrics_table() -> str:
    """Every registered metric: name, dims, units, long name and definition."""
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
            definition = " ".join(_inline(line.strip()) for line in first.splitlines())
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
    if RULES_TABLE in markdown:
        markdown = markdown.replace(RULES_TABLE, rules_table())
    if METRICS_TABLE in markdown:
        markdown = markdown.replace(METRICS_TABLE, metrics_table())
    return markdown


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "site-preview")
    (out / "rules").mkdir(parents=True, exist_ok=True)
    for rule_name, rule_cls in _rules().items():
        (out / "rules" / f"{rule_name}.md").write_text(rule_page(rule_name, rule_cls))
    (out / "metrics-table.md").write_text(metrics_table())
    (out / "rules-table.md").write_text(rules_table())
    print(f"wrote {out}")
