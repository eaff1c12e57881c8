"""Feedback rules, registered by name.

Built-in rules live one per file in this package; a user's own rule is one file too, registered
with :func:`register` or through the entry-point group ``biofa.rules``::

    [project.entry-points."biofa.rules"]
    my_rule = "my_package.my_rule:MyRule"

``available()`` lists the names, ``get(name)`` returns the rule class, ``create(name, **options)``
an instance.
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import Any

from biofa.rules._base import DirectFeedbackRule, Feedback, FeedbackRule, LocalSignals

__all__ = [
    "DirectFeedbackRule",
    "Feedback",
    "FeedbackRule",
    "LocalSignals",
    "available",
    "create",
    "describe",
    "get",
    "register",
]

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
    """Class decorator registering a rule under ``cls.name``."""
    if not getattr(cls, "name", ""):
        raise ValueError(f"rule class {cls.__name__} needs a non-empty `name`")
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
        import_module(f"{__name__}.{module}")
    for entry in metadata.entry_points(group="biofa.rules"):
        try:
            register(entry.load())
        except Exception as exc:  # a broken plug-in must not break biofa
            import warnings

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
