"""A griffe extension: biofa's reStructuredText docstrings as Markdown for mkdocstrings.

biofa's docstrings are NumPy-style with reST inside (``:class:`~biofa.x.Y```, ``:math:`...```,
``.. math::`` blocks, ````literals````, ``::`` literal blocks). mkdocstrings renders Markdown, so
once griffe has loaded the package this extension rewrites every docstring with the converter the
rule pages use (:func:`rst_md.rst_to_md`, one converter for the whole site). Cross-reference
roles become optional mkdocs-autorefs links: a link where the target is documented on the site,
code text where it is not. Targets are resolved as Sphinx would: a full dotted path as written, a
short name (``:class:`Train```, ``:meth:`Train.replace```) in the scope of the docstring's object.

Loaded by ``mkdocs.yml``::

    plugins:
      - mkdocstrings:
          handlers:
            python:
              options:
                extensions: [docs/griffe_rst.py]

The docstrings in ``biofa/`` stay reST, for ``help()`` and for readers of the source.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import griffe


def _load_rst_md():
    path = Path(__file__).with_name("rst_md.py")  # docs/ is not a package, nor on sys.path
    spec = importlib.util.spec_from_file_location("biofa_docs_rst_md", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_rst = _load_rst_md()


def resolve(obj: griffe.Object, target: str) -> str | None:
    """The full dotted path a role's ``target`` names from ``obj``'s docstring, or None."""
    name = target.lstrip(".")
    if not name:
        return None
    head, _, rest = name.partition(".")
    for scope in (obj, obj.parent):  # a method's docstring sees its class's names too
        if scope is None:
            continue
        try:
            path = scope.resolve(head)
        except Exception:  # griffe's NameResolutionError, or an alias that does not resolve
            continue
        return f"{path}.{rest}" if rest else path
    return name if "." in name else None  # a full path (biofa.x.Y, xarray.Dataset) as written


def convert(obj: griffe.Object) -> None:
    """Rewrite ``obj``'s docstring from reST to Markdown (in place, once)."""
    docstring = obj.docstring
    if docstring is None or obj.extra.get("biofa_docs", {}).get("converted"):
        return

    def reference(target: str, shown: str) -> str:
        path = resolve(obj, target)
        return _rst.link_reference(path, shown) if path else _rst.code_reference(target, shown)

    docstring.value = _rst.rst_to_md(docstring.value, reference).rstrip("\n")
    docstring.__dict__.pop("parsed", None)  # parsed lazily: drop a parse of the old text
    obj.extra["biofa_docs"]["converted"] = True


def _walk(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if member.is_alias:
            continue
        yield from _walk(member)


class RstToMarkdown(griffe.Extension):
    """Convert every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            convert(obj)
