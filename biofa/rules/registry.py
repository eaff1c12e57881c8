"""The rule registry: built-in rules by module name, users' rules by decorator or entry point."""

from __future__ import annotations

import inspect
import warnings
from importlib import import_module, metadata
from typing import Any

from biofa.rules._base import DirectFeedbackRule, FeedbackRule, Probes

__all__ = ["accepted_options", "available", "create", "describe", "get", "register"]

_REGISTRY: dict[str, type] = {}
_BUILTIN = (
    "backprop",
    "feedback_alignment",
    "direct_feedback_alignment",
    "usf",
    "usf_flipped",
    "brsf",
    "frsf",
    "dale_feedback",
    "kolen_pollack",
    "weight_mirror",
    "product_fa",
    "ekdaa",
)
_loaded = False


def register(cls: type) -> type:
    """Class decorator registering a rule under ``cls.name``.

    The class must be a concrete :class:`FeedbackRule` or :class:`DirectFeedbackRule` with a
    non-empty ``name``; a :class:`Probes` rule must declare its ``metrics``.
    """
    if not (isinstance(cls, type) and issubclass(cls, (FeedbackRule, DirectFeedbackRule))):
        raise TypeError(f"{cls!r} is not a FeedbackRule or DirectFeedbackRule subclass")
    if not getattr(cls, "name", ""):
        raise ValueError(f"rule class {cls.__name__} needs a non-empty `name`")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise TypeError(f"rule {cls.name!r} is abstract: it does not implement {missing}")
    if issubclass(cls, Probes) and not cls.metrics:
        raise TypeError(f"rule {cls.name!r} is a Probes rule but declares no `metrics`")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"rule name {cls.name!r} is already registered by {existing.__module__}")
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN:
        import_module(f"biofa.rules.{module}")
    for entry in metadata.entry_points(group="biofa.rules"):
        try:
            register(entry.load())
        except Exception as exc:  # a broken plug-in must not break biofa
            warnings.warn(
                f"could not load feedback rule entry point {entry.name!r}: {exc}", stacklevel=2
            )


def available() -> list[str]:
    """Names of every registered rule, sorted."""
    _load()
    return sorted(_REGISTRY)


def get(name: str) -> type:
    """The rule class registered as ``name``; ``ValueError`` listing the valid names otherwise."""
    _load()
    if name not in _REGISTRY:
        raise ValueError(f"unknown feedback rule {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def create(name: str, **options: Any):
    """An instance of rule ``name`` with ``options``."""
    return get(name)(**options)


def describe(name: str) -> str:
    """One line describing rule ``name``."""
    return get(name).summary()


def accepted_options(name: str, **candidates: Any) -> dict[str, Any]:
    """The ``candidates`` that rule ``name`` takes as options, leaving out ``None`` values: how a
    spec with keywords for several rules (``norm=`` for the sign-concordant ones, ``expansion=``
    for PFA, ...) passes each rule only its own. ``backprop`` takes none."""
    defaults = get(name).defaults
    return {k: v for k, v in candidates.items() if k in defaults and v is not None}
