"""reStructuredText in biofa's docstrings -> Markdown for the docs site (one converter for all).

Used by ``docs/gen_pages.py`` (rule pages, tables) and ``docs/griffe_rst.py`` (the API pages):
:func:`rst_to_md` handles what biofa's docstrings use; cross-reference roles go through a
``reference`` function, plain code for Markdown that must read well anywhere (the committed
tables) or optional mkdocs-autorefs links on the site.
"""

from __future__ import annotations

import html
import inspect
import re
from collections.abc import Callable

_ROLE = re.compile(r":(?:mod|class|func|meth|attr|data|obj|exc):`(~?)([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_LITERAL = re.compile(r"``([^`]+?)``")
_LINK = re.compile(r"`([^`<]+?)\s*<(https?://[^>]+)>`__?")
_LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d+\.)\s")

Reference = Callable[[str, str], str]
"""``reference(target, shown)``: the Markdown of a cross-reference role to ``target`` shown as
``shown`` (:func:`code_reference` by default, :func:`link_reference` for links)."""


def code_reference(target: str, shown: str) -> str:
    """A cross-reference as plain code: ``:class:`~a.B``` -> ```B```."""
    return f"`{shown}`"


def link_reference(target: str, shown: str) -> str:
    """A cross-reference as an optional mkdocs-autorefs link: a link where ``target`` is documented
    on the site, the same code text (no warning) where it is not."""
    code = f"<code>{html.escape(shown)}</code>"
    return f'<autoref identifier="{html.escape(target)}" optional>{code}</autoref>'


def rst_to_md(text: str, reference: Reference = code_reference) -> str:
    """The reStructuredText of a docstring as Markdown (with ``pymdownx.arithmatex`` maths).

    Handles what biofa's docstrings use: ``.. math::`` blocks (-> ``$$ ... $$``), ``:math:`` roles
    (-> ``$...$``), cross-reference roles (-> ``reference(target, shown)``: code by default),
    ````literals```` (-> code), hyperlinks (```text <url>`_`` -> ``[text](url)``), literal blocks
    after ``::`` (-> fenced code) and list nesting (reST indents nested items by 2 spaces, Markdown
    needs 4). Used for the rule pages and, through ``docs/griffe_rst.py``, every API docstring.
    """
    lines = inline(inspect.cleandoc(text), reference).splitlines()  # roles may span lines
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
            body, i = _block(lines, i, indent)
            maths = [stripped[len(".. math::") :].strip()] + [b.strip() for b in body]
            maths = [m for m in maths if m]  # whitespace means nothing in TeX
            out += ["", f"{pad}$$"] + [f"{pad}{m}" for m in maths] + [f"{pad}$$", ""]
            continue
        if stripped.endswith("::") and _block(lines, i, indent)[0]:
            body, i = _block(lines, i, indent)
            lead = stripped[:-2].rstrip()
            if lead:  # "text::" -> "text:"; a lone "::" disappears
                out.append(pad + (lead if lead.endswith(":") else lead + ":"))
            depth = min(_indent(b) for b in body if b.strip())
            code = [b[depth:].rstrip() for b in body]
            while code and not code[0]:
                code.pop(0)
            out += ["", f"{pad}```"] + [f"{pad}{c}" if c else "" for c in code] + [f"{pad}```", ""]
            continue
        out.append(pad + stripped if stripped else "")
        i += 1
    return "\n".join(out).strip() + "\n"


def _block(lines: list[str], i: int, indent: int) -> tuple[list[str], int]:
    """The lines after ``lines[i]`` indented deeper than ``indent`` (blank lines included), and the
    index of the first line after them."""
    body = []
    j = i + 1
    while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > indent):
        body.append(lines[j])
        j += 1
    while body and not body[-1].strip():  # trailing blank lines belong to what follows
        body.pop()
        j -= 1
    if not any(b.strip() for b in body):
        return [], i + 1
    return body, j


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def inline(text: str, reference: Reference = code_reference) -> str:
    def role(m: re.Match) -> str:
        target = m.group(2).strip()
        shown = target.split(".")[-1] if m.group(1) else target
        return reference(target, shown)

    text = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
    text = _ROLE.sub(role, text)
    text = _LINK.sub(lambda m: f"[{m.group(1).strip()}]({m.group(2)})", text)
    return _LITERAL.sub(lambda m: f"`{m.group(1)}`", text)
