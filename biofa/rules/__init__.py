"""Feedback rules, registered by name.

Built-in rules live one per file in this package; a user's own rule is one file too, registered
with :func:`register` or through the entry-point group ``biofa.rules``::

    [project.entry-points."biofa.rules"]
    my_rule = "my_package.my_rule:MyRule"

``available()`` lists the names, ``get(name)`` returns the rule class, ``create(name, **options)``
an instance.
"""

from __future__ import annotations

from biofa.rules import _base
from biofa.rules._base import *  # noqa: F403  (the contract: rule types, capabilities, signals)
from biofa.rules.registry import accepted_options, available, create, describe, get, register
from biofa.rules.resolve import assign, check, resolve, used_by

__all__ = [
    *_base.__all__,
    "accepted_options",
    "assign",
    "available",
    "check",
    "create",
    "describe",
    "get",
    "register",
    "resolve",
    "used_by",
]
