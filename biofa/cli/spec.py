"""``--set`` overrides and sweeps: from a loaded spec (:mod:`biofa.cli.specfile`) to the runs.

An override ``key=value`` goes to ``circuit()`` if ``key`` is one of its keyword parameters,
otherwise to the :class:`Train` field of that name (a key that is both goes to ``circuit()``).
Values are checked against the parameter's annotation (or its default's type) or the field's
annotation; see :func:`convert`. With ``--sweep``, an override of a *swept* key selects the
points whose value is the given one (``--set rule=usf`` or, several, ``--set rule=usf,frsf``).

Every user error is a ``ValueError`` (or ``TypeError``) with a one-line message.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from biofa import rules
from biofa.circuit import Circuit
from biofa.cli.convert import BadValue, convert, describe_type, type_of_default
from biofa.cli.names import name_keys, nondefaults, point_coords, run_name
from biofa.cli.specfile import Spec, destination, load_spec, spec_line, train_types
from biofa.train.config import Train

__all__ = ["Point", "Spec", "load_spec", "parse_overrides", "resolve", "run_points"]

_BIOFA = Path(__file__).resolve().parents[1]  # the package: where declaration errors come from


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
    #: the point's index in the spec's sweep (``None`` without ``--sweep``)
    index: int | None = None
    #: the resolved settings that differ from the spec's defaults and are not in the name's
    #: coordinates (their hash is the name's ``cfg-`` part)
    extra: dict[str, Any] = field(default_factory=dict)


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
        if destination(spec, key) == "circuit":
            kwargs[key] = _checked(key, value, _param_type(spec.circuit_params[key]), where)
            if key == "rule" and isinstance(kwargs[key], str):
                _check_rule(_label(where, key, value), kwargs[key])
        else:
            changes[key] = _checked(key, value, train_types()[key], where)
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

    With ``sweep``, an override of a swept key keeps only the points whose resolved value is the
    override's (a comma-separated list keeps any of them, except for keys whose values are
    sequences, such as ``milestones``); the points keep their sweep indices (:attr:`Point.index`).

    ``coords`` holds ``rule`` (the ``circuit()`` keyword ``rule`` when it is a string, otherwise
    ``"+".join(biofa.rules.used_by(circuit))``), ``seed`` (``train.seed``) and every swept key, with
    values netCDF can store (str, int, float). ``name`` (:func:`biofa.cli.names.run_name`) joins
    ``rule``, ``seed`` and the keys the point itself sets, ``rule-fa_seed-0_width-32``, plus
    ``_cfg-<hash>`` when other resolved settings differ from the spec's defaults.

    Raises
    ------
    ValueError
        ``sweep=True`` on a spec without a sweep, a selection that keeps no point, two points
        with the same run name, or any error of :func:`resolve` or of building/validating a
        circuit (an exception raised in the spec's ``circuit()`` names the file and line).
    """
    selectors: dict[str, list[Any]] = {}
    if not sweep:
        groups: list[dict[str, Any]] = [{}]
        swept: list[str] = []
    else:
        if spec.sweep is None:
            raise ValueError(f"--sweep: {spec.path} defines no `sweep = grid(...)`")
        swept = spec.sweep.keys()
        raw = {k: v for k, v in overrides.items() if k in swept}
        selectors = {k: _selector(spec, k, v) for k, v in raw.items()}
        overrides = {k: v for k, v in overrides.items() if k not in swept}
        groups = list(spec.sweep)

    _split(spec, overrides, "--set")  # --set errors read "--set key=value", before sweep errors
    chosen: list[tuple[int, dict, dict, Train]] = []
    seen: dict[str, list[Any]] = {key: [] for key in selectors}
    for i, point in enumerate(groups):
        where = f"sweep point {i} ({_show(point)})" if sweep else "--set"
        merged = {**overrides, **point}
        kwargs, train = _in_context(where, sweep, partial(resolve, spec, merged, where=where))
        values = {k: kwargs[k] if k in kwargs else getattr(train, k) for k in selectors}
        for key, value in values.items():
            if value not in seen[key]:
                seen[key].append(value)
        if all(values[k] in allowed for k, allowed in selectors.items()):
            chosen.append((i, point, kwargs, train))
    for key, allowed in selectors.items():
        missing = [v for v in allowed if v not in seen[key]]
        if missing:
            raise ValueError(
                f"--set {key}={raw[key]}: no sweep point has {key}="
                f"{', '.join(map(repr, missing))} (the sweep's values: "
                f"{', '.join(map(repr, seen[key]))})"
            )

    points: list[Point] = []
    names: dict[str, int] = {}
    for i, point, kwargs, train in chosen:
        where = f"sweep point {i} ({_show(point)})" if sweep else "--set"
        circuit = _in_context(where, sweep, partial(build_circuit, spec, kwargs))
        coords = point_coords(kwargs, train, circuit, swept)
        keys = name_keys(coords, point)
        extra = nondefaults(spec, kwargs, train, skip=keys)
        name = run_name({k: coords[k] for k in keys}, extra)
        if name in names:
            raise ValueError(
                f"sweep points {names[name]} and {i} both have run name {name!r}; "
                "their outputs would overwrite each other"
            )
        names[name] = i
        points.append(Point(name, kwargs, train, coords, circuit, i if sweep else None, extra))
    return points


def _in_context(where: str, sweep: bool, fn: Callable[[], Any]) -> Any:
    """``fn()``; in a sweep, an error is prefixed with the point it belongs to."""
    try:
        return fn()
    except (ValueError, TypeError) as exc:
        if not sweep or str(exc).startswith(where):
            raise
        raise ValueError(f"{where}: {exc}") from exc


def build_circuit(spec: Spec, kwargs: Mapping[str, Any]) -> Circuit:
    """``spec.circuit_fn(**kwargs)``, validated and its rules checked.

    A ``ValueError``/``TypeError`` raised by biofa's declarations (``Units(0)``, an unknown
    area, ...) keeps its message; any other exception raised while ``circuit()`` runs becomes one
    ``ValueError`` naming the spec file and line: ``toy.py:12: circuit() raised ZeroDivisionError:
    division by zero``.
    """
    try:
        circuit = spec.circuit_fn(**kwargs)
    except (Exception, SystemExit) as exc:  # a spec's sys.exit() too
        frames = traceback.extract_tb(exc.__traceback__)
        inner = Path(frames[-1].filename).resolve() if frames else None
        if isinstance(exc, (ValueError, TypeError)) and inner and inner.is_relative_to(_BIOFA):
            raise  # a declaration error: its message names the area/projection
        text = " ".join(str(exc).split())[:300]
        where = spec_line(spec.path, exc) or f"{spec.path}"
        raise ValueError(
            f"{where}: circuit() raised {type(exc).__name__}" + (f": {text}" if text else "")
        ) from exc
    if not isinstance(circuit, Circuit):
        raise TypeError(
            f"{spec.path}: circuit() returned {type(circuit).__name__}, not a Circuit (does it "
            "end with `return c`?)"
        )
    circuit.validate()
    rules.check(circuit)
    return circuit


def _selector(spec: Spec, key: str, value: Any) -> list[Any]:
    """The values a ``--sweep --set key=value`` of a swept key keeps (converted)."""
    tp = _param_type(spec.circuit_params[key]) if key in spec.circuit_params else None
    tp = tp if tp is not None else train_types()[key]
    sequence = "comma-separated" in describe_type(tp)
    parts = [value] if sequence or not isinstance(value, str) else value.split(",")
    allowed = []
    for part in parts:
        converted = _checked(key, part.strip() if isinstance(part, str) else part, tp, "--set")
        if key == "rule" and isinstance(converted, str):
            _check_rule(f"--set {key}={value}", converted)
        allowed.append(converted)
    return allowed


def _show(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in point.items())
