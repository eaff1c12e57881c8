"""Spec files: load one, apply ``--set`` overrides, expand its sweep into runs.

A spec file is plain Python exporting ``circuit(**kwargs) -> Circuit``, ``train = Train(...)``
(default ``Train()``) and optionally ``sweep = grid(...)``. An override ``key=value`` goes to
``circuit()`` if ``key`` is one of its keyword parameters, otherwise to the :class:`Train` field of
that name (a key that is both goes to ``circuit()``). Values are checked against the parameter's
annotation (or its default's type) or the field's annotation; see :func:`convert`.

Every user error is a ``ValueError`` (or ``TypeError``) with a one-line message.
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
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from biofa import rules
from biofa.circuit import Circuit
from biofa.cli.convert import BadValue, convert, describe_type, type_of_default
from biofa.cli.names import point_coords, run_name
from biofa.cli.sweep import Grid
from biofa.train.config import Train

__all__ = ["Point", "Spec", "load_spec", "parse_overrides", "resolve", "run_points"]

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


@dataclass
class Point:
    """One run: resolved ``circuit()`` keywords, ``Train``, output coordinates and run name.

    ``circuit_kwargs`` holds every keyword parameter of ``circuit()`` (defaults filled in), so it
    is the complete circuit configuration; ``circuit`` is the built and validated circuit.
    """

    name: str
    circuit_kwargs: dict[str, Any]
    train: Train
    coords: dict[str, Any]
    circuit: Any = field(default=None, repr=False)


@cache
def _train_types() -> dict[str, Any]:
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
    if not path.is_file():
        raise ValueError(f"spec file not found: {path}")
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
    except Exception as exc:
        del sys.modules[module_name]
        lines = [
            f.lineno for f in traceback.extract_tb(exc.__traceback__) if _same(f.filename, path)
        ]
        where = f"{path}:{lines[-1]}" if lines else str(path)
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
        _destination(spec, key, where=f"{path}: sweep")
    both = sorted(set(spec.circuit_params) & set(Train.field_names()))
    if both:
        log.warning(
            "%s: %s both circuit() keywords and Train fields; overrides go to circuit()",
            path,
            ", ".join(both),
        )
    return spec


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


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}`` (split at the first ``=``).

    Raises
    ------
    ValueError
        For an item without ``=``, an empty or non-identifier key, or a key given twice.
    """
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            hint = " (put the spec file before --set)" if item.endswith(".py") else ""
            raise ValueError(f"--set {item}: expected KEY=VALUE{hint}")
        if not key.isidentifier():
            raise ValueError(f"--set {item}: {key!r} is not a valid key")
        if key in result:
            raise ValueError(f"--set {key} given twice ({key}={result[key]} and {item})")
        result[key] = value
    return result


def _valid_keys(spec: Spec) -> str:
    return (
        f"circuit: {', '.join(spec.circuit_params) or '(none)'}; "
        f"Train: {', '.join(Train.field_names())}"
    )


def _destination(spec: Spec, key: str, where: str = "") -> str:
    if key in spec.circuit_params:
        return "circuit"
    if key in _train_types():
        return "train"
    close = difflib.get_close_matches(key, [*spec.circuit_params, *_train_types()], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    prefix = f"{where}: " if where else ""
    raise ValueError(f"{prefix}unknown key {key!r}{hint}; valid keys: {_valid_keys(spec)}")


def _param_type(param: inspect.Parameter) -> Any:
    if param.annotation is not param.empty and not isinstance(param.annotation, str):
        return param.annotation
    if param.default is not param.empty and param.default is not None:
        return type_of_default(param.default)
    return Any


def resolve(
    spec: Spec, overrides: Mapping[str, Any], *, where: str = "--set"
) -> tuple[dict, Train]:
    """Split and type-check ``overrides`` into ``circuit()`` keywords and a :class:`Train`.

    Parameters
    ----------
    spec
        The loaded spec.
    overrides
        ``key -> value``; strings (from ``--set``) are converted, other values (from a sweep or
        Python) are type-checked.
    where
        What the overrides came from, used in error messages (``"--set"``, ``"sweep"``).

    Returns
    -------
    circuit_kwargs, train
        Every keyword parameter of ``circuit()`` (defaults filled in) and the spec's ``train``
        with the overridden fields replaced.

    Raises
    ------
    ValueError
        For an unknown key (listing the valid ones), a value of the wrong type, an unknown rule
        name, a ``circuit()`` parameter without a default and no value, or an invalid ``Train``.
    """
    kwargs, train = _split(spec, overrides, where)
    for name, param in spec.circuit_params.items():
        if name not in kwargs:
            if param.default is param.empty:
                raise ValueError(f"circuit() needs a value for {name!r}: pass --set {name}=...")
            kwargs[name] = param.default
    return kwargs, train


def _split(spec: Spec, overrides: Mapping[str, Any], where: str) -> tuple[dict, Train]:
    """The overridden ``circuit()`` keywords (only those) and the overridden ``Train``."""
    kwargs: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if _destination(spec, key) == "circuit":
            kwargs[key] = _checked(key, value, _param_type(spec.circuit_params[key]), where)
            if key == "rule" and isinstance(kwargs[key], str):
                _check_rule(_label(where, key, value), kwargs[key])
        else:
            changes[key] = _checked(key, value, _train_types()[key], where)
    return kwargs, spec.train.replace(**changes) if changes else spec.train


def _label(where: str, key: str, value: Any) -> str:
    if where == "--set":  # from the command line (strings) or from Python (any value)
        return f"--set {key}={value}" if isinstance(value, str) else f"{key}={value!r}"
    return f"{where}: {key}={value!r}"


def _checked(key: str, value: Any, tp: Any, where: str) -> Any:
    try:
        return convert(value, tp)
    except BadValue:
        got = "" if isinstance(value, str) else f", got {type(value).__name__}"
        message = f"{_label(where, key, value)}: expected {describe_type(tp)}{got}"
        raise ValueError(message) from None


def _check_rule(label: str, name: str) -> None:
    names = rules.available()
    if name not in names:
        raise ValueError(f"{label}: unknown rule {name!r}; available rules: {', '.join(names)}")


def run_points(spec: Spec, overrides: Mapping[str, Any], sweep: bool = False) -> list[Point]:
    """The runs to do: one from ``overrides``, or one per sweep point merged with ``overrides``.

    Each point's circuit is built (``spec.circuit_fn(**kwargs)``) and validated here, so every
    error that can be found without training is found before the first run starts.

    ``coords`` holds ``rule`` (the ``circuit()`` keyword ``rule`` when it is a string, otherwise
    ``"+".join(biofa.rules.used_by(circuit))``), ``seed`` (``train.seed``) and every swept key, with
    values netCDF can store (str, int, float). ``name`` joins them, ``rule-fa_seed-0_width-32``.

    Raises
    ------
    ValueError
        ``sweep=True`` on a spec without a sweep, an override of a swept key, two points with
        the same run name, or any error of :func:`resolve` or of building/validating a circuit.
    """
    if not sweep:
        groups: list[dict[str, Any]] = [{}]
        swept: list[str] = []
    else:
        if spec.sweep is None:
            raise ValueError(f"--sweep: {spec.path} defines no `sweep = grid(...)`")
        swept = spec.sweep.keys()
        clash = [key for key in overrides if key in swept]
        if clash:
            raise ValueError(
                f"--set {clash[0]} conflicts with the spec's sweep, which sets "
                f"{clash[0]!r}; remove it from --set (or from the sweep)"
            )
        groups = list(spec.sweep)

    _split(spec, overrides, "--set")  # --set errors read "--set key=value", before sweep errors
    points: list[Point] = []
    names: dict[str, int] = {}
    for i, point in enumerate(groups):
        where = f"sweep point {i} ({_show(point)})" if sweep else "--set"
        try:
            kwargs, train = resolve(spec, {**overrides, **point}, where=where)
            circuit = spec.circuit_fn(**kwargs)
            if not isinstance(circuit, Circuit):
                raise TypeError(f"circuit() returned {type(circuit).__name__}, not a Circuit")
            circuit.validate()
            rules.check(circuit)
        except (ValueError, TypeError) as exc:
            if not sweep or str(exc).startswith(where):
                raise
            raise ValueError(f"{where}: {exc}") from exc
        coords = point_coords(kwargs, train, circuit, swept)
        name = run_name(coords)
        if name in names:
            raise ValueError(
                f"sweep points {names[name]} and {i} both have run name {name!r}; "
                "their outputs would overwrite each other"
            )
        names[name] = i
        points.append(Point(name, kwargs, train, coords, circuit))
    return points


def _show(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in point.items())
