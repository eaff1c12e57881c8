"""Spec files: import one and check what it exports.

A spec file is plain Python exporting ``circuit(**kwargs) -> Circuit``, ``train = Train(...)``
(default ``Train()``) and optionally ``sweep = grid(...)``; :func:`load_spec` imports it and turns
every problem (a missing file, a folder, a syntax error, an exception at import, a wrong export)
into a one-line ``ValueError`` naming the file and, where there is one, the line.
:mod:`biofa.cli.spec` applies ``--set`` overrides and expands the sweep.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import itertools
import logging
import re
import sys
import traceback
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from biofa.cli.sweep import Grid
from biofa.train.config import Train

__all__ = ["Spec", "destination", "load_spec", "spec_line", "train_types"]

log = logging.getLogger(__name__)
_counter = itertools.count()
_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_MISSING = object()


@dataclass(frozen=True)
class Spec:
    """A loaded spec file.

    Attributes
    ----------
    name
        The file stem (``circuits/ei_cnn.py`` -> ``"ei_cnn"``).
    path, source_text, sha256
        Where it was loaded from, its text and the SHA-256 of its bytes (recorded in every output).
    circuit_fn
        The spec's ``circuit`` function.
    train
        The spec's ``train`` (``Train()`` when the spec defines none).
    sweep
        The spec's ``sweep`` as a :class:`~biofa.cli.sweep.Grid`, or ``None``.
    circuit_params
        ``circuit()``'s keyword parameters by name (annotations evaluated where possible).
    """

    name: str
    path: Path
    source_text: str
    sha256: str
    circuit_fn: Callable[..., Any]
    train: Train
    sweep: Grid | None
    circuit_params: dict[str, inspect.Parameter]


@cache
def train_types() -> dict[str, Any]:
    return typing.get_type_hints(Train)


def load_spec(path: str | Path) -> Spec:
    """Import the spec file at ``path``.

    Raises
    ------
    ValueError
        If the file is missing, has a syntax error (``file:line: message``), raises while being
        imported, has no ``circuit`` function, or its ``train``/``sweep`` has the wrong type or a
        sweep key is unknown.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(str(p) for p in path.glob("*.py") if not p.name.startswith("_"))
        hint = f" (its spec files: {', '.join(found[:4])}{', ...' if len(found) > 4 else ''})"
        raise ValueError(f"{path} is a folder, not a spec file{hint if found else ''}")
    if not path.is_file():
        what = "not a regular file" if path.exists() else "not found"
        raise ValueError(f"spec file {what}: {path}")
    raw = path.read_bytes()
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    safe = re.sub(r"\W", "_", path.stem)
    module_name = f"_biofa_spec_{safe}_{next(_counter)}"
    importer = importlib.util.spec_from_file_location(module_name, path)
    if importer is None or importer.loader is None:
        raise ValueError(f"{path}: cannot be imported as a Python file (is it a .py file?)")
    module = importlib.util.module_from_spec(importer)
    sys.modules[module_name] = module  # dataclasses and pickle look modules up here
    try:
        importer.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        file = path if not exc.filename or _same(exc.filename, path) else exc.filename
        where = f"{file}:{exc.lineno}" if exc.lineno else str(file)
        raise ValueError(f"{where}: syntax error: {exc.msg}") from exc
    except (Exception, SystemExit) as exc:  # a spec's sys.exit() too
        del sys.modules[module_name]
        where = spec_line(path, exc) or str(path)
        message = f"{where}: error while loading the spec: {type(exc).__name__}: {exc}"
        raise ValueError(message) from exc

    circuit_fn = getattr(module, "circuit", None)
    if not callable(circuit_fn):
        raise ValueError(
            f"{path}: no circuit() function; a spec defines `def circuit(...) -> Circuit`"
        )
    train = getattr(module, "train", _MISSING)
    if train is _MISSING:
        train = Train()
    elif not isinstance(train, Train):
        raise ValueError(f"{path}: `train` must be a Train(...), got {type(train).__name__}")
    sweep = getattr(module, "sweep", None)
    if sweep is not None and not isinstance(sweep, Grid):
        if not isinstance(sweep, (list, tuple)) or not all(isinstance(p, Mapping) for p in sweep):
            raise ValueError(
                f"{path}: `sweep` must be a grid(...) or a list of dicts, got {sweep!r}"
            )
        sweep = Grid(sweep)

    spec = Spec(
        path.stem,
        path,
        source,
        hashlib.sha256(raw).hexdigest(),
        circuit_fn,
        train,
        sweep,
        _circuit_params(circuit_fn, path),
    )
    for key in sweep.keys() if sweep is not None else ():
        destination(spec, key, where=f"{path}: sweep")
    both = sorted(set(spec.circuit_params) & set(Train.field_names()))
    if both:
        log.warning(
            "%s: %s both circuit() keywords and Train fields; overrides go to circuit()",
            path,
            ", ".join(both),
        )
    return spec


def spec_line(path: Path, exc: BaseException) -> str | None:
    """``"path:line"`` of the innermost frame of ``exc``'s traceback in the spec file ``path``."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if _same(f.filename, path)]
    return f"{path}:{lines[-1]}" if lines else None


def _same(filename: str, path: Path) -> bool:
    try:
        return Path(filename).resolve() == path.resolve()
    except OSError:
        return False


def _circuit_params(fn: Callable[..., Any], path: Path) -> dict[str, inspect.Parameter]:
    try:
        signature = inspect.signature(fn, eval_str=True)
    except Exception:  # an annotation that does not evaluate: fall back to the default's type
        signature = inspect.signature(fn)
    params = {}
    for name, param in signature.parameters.items():
        if param.kind in _KEYWORD:
            params[name] = param
        elif param.kind is inspect.Parameter.POSITIONAL_ONLY and param.default is param.empty:
            raise ValueError(f"{path}: circuit() parameter {name!r} must be a keyword parameter")
    return params


def _valid_keys(spec: Spec) -> str:
    return (
        f"circuit: {', '.join(spec.circuit_params) or '(none)'}; "
        f"Train: {', '.join(Train.field_names())}"
    )


def destination(spec: Spec, key: str, where: str = "") -> str:
    if key in spec.circuit_params:
        return "circuit"
    if key in train_types():
        return "train"
    close = difflib.get_close_matches(key, [*spec.circuit_params, *train_types()], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    prefix = f"{where}: " if where else ""
    raise ValueError(f"{prefix}unknown key {key!r}{hint}; valid keys: {_valid_keys(spec)}")
