"""Typed conversion of ``--set`` strings and sweep values (used by :mod:`biofa.cli.spec`).

:func:`convert` turns ``"1e-3"`` into a float, ``"100,150"`` into ``tuple[int, ...]`` and so on,
following a parameter's annotation or its default value's type.
"""

from __future__ import annotations

import numbers
import types
import typing
from typing import Any

import numpy as np

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


class BadValue(Exception):
    """Raised by :func:`convert` for a value that does not fit the type."""


def convert(value: Any, tp: Any) -> Any:
    """Convert a string (or type-check any other value) to ``tp``.

    Supports ``int``, ``float`` (``"1e-3"``; ints accepted), ``bool`` (``true/false/yes/no/on/
    off/1/0``, any case), ``str``, ``tuple[X, ...]``/``tuple[X, Y]``/``list[X]`` (``"100,150"``,
    ``""`` for empty), ``X | None`` (``"none"`` -> ``None``), unions (first member that fits),
    ``Literal[...]`` and classes built from a string (``Path``). ``Any`` passes values through.

    Raises
    ------
    BadValue
        If ``value`` does not fit ``tp``.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Literal:
        for choice in args:
            try:
                if convert(value, type(choice)) == choice:
                    return choice
            except BadValue:
                pass
        raise BadValue
    if origin is typing.Union or origin is types.UnionType:
        if type(None) in args and (value is None or str(value).strip().lower() == "none"):
            return None
        for member in args:
            if member is not type(None):
                try:
                    return convert(value, member)
                except BadValue:
                    pass
        raise BadValue
    if origin in (tuple, list) or tp in (tuple, list):
        return _sequence(value, origin or tp, args)
    if tp is bool:
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise BadValue
    if tp in (int, float):
        if isinstance(value, str):
            try:
                return tp(value.strip())
            except ValueError:
                raise BadValue from None
        kind = numbers.Integral if tp is int else numbers.Real
        if isinstance(value, kind) and not isinstance(value, (bool, np.bool_)):
            return tp(value)
        raise BadValue
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if isinstance(value, str) and tp is not str:
            try:
                return tp(value)
            except Exception:
                raise BadValue from None
        raise BadValue
    return value  # a typing construct we do not check


def _sequence(value: Any, kind: type, args: tuple) -> tuple | list:
    if isinstance(value, str):
        text = value.strip().strip("()[]").strip()
        items: list[Any] = [] if not text else [v.strip() for v in text.split(",")]
        if items and items[-1] == "":  # "5," is a one-element tuple
            items.pop()
    elif isinstance(value, (tuple, list)):
        items = list(value)
    else:
        raise BadValue
    if len(args) == 2 and args[1] is Ellipsis or kind is list and args:
        items = [convert(v, args[0]) for v in items]
    elif args:
        if len(items) != len(args):
            raise BadValue
        items = [convert(v, t) for v, t in zip(items, args, strict=True)]
    return kind(items)


def describe_type(tp: Any) -> str:
    """``tp`` for an error message: ``int``, ``int or none``, ``one of 'a', 'b'``, ..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join("none" if a is type(None) else describe_type(a) for a in args)
    if origin in (tuple, list) or tp in (tuple, list):
        element = describe_type(args[0]) if args else "value"
        return f"comma-separated {element}s (e.g. 1,2; empty for none)"
    if tp is bool:
        return "bool (true/false)"
    return getattr(tp, "__name__", str(tp))


def type_of_default(default: Any) -> Any:
    """The type an un-annotated parameter takes from its default (``(1, 2)`` -> tuple[int, ...])."""
    kinds = {type(v) for v in default} if isinstance(default, (tuple, list)) else set()
    if len(kinds) == 1:
        (kind,) = kinds
        return tuple[kind, ...] if isinstance(default, tuple) else list[kind]
    return type(default)
