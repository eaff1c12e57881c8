"""Feedback rules, registered by name.

Built-in rules live one per file in this package; a user's own rule is one file too, registered
with :func:`register` or through the entry-point group ``biofa.rules``::

    [project.entry-points."biofa.rules"]
    my_rule = "my_package.my_rule:MyRule"

``available()`` lists the names, ``get(name)`` returns the rule class, ``create(name, **options)``
an instance.
"""

from __future__ import annotations

from biofa.rules._base import (
    AfterStep,
    AreaContext,
    AreaHook,
    AreaRule,
    CrossesNonlinearity,
    CrossingHook,
    CustomErrorPath,
    DeliverError,
    DirectFeedbackRule,
    Feedback,
    FeedbackContext,
    FeedbackRule,
    LocalSignals,
    NativeBackward,
    Probes,
    Rule,
    RuleMetric,
)
from biofa.rules.registry import available, create, describe, get, register
from biofa.rules.resolve import check, resolve, used_by

__all__ = [
    "AfterStep",
    "AreaContext",
    "AreaHook",
    "AreaRule",
    "CrossesNonlinearity",
    "CrossingHook",
    "CustomErrorPath",
    "DeliverError",
    "DirectFeedbackRule",
    "Feedback",
    "FeedbackContext",
    "FeedbackRule",
    "LocalSignals",
    "NativeBackward",
    "Probes",
    "Rule",
    "RuleMetric",
    "available",
    "check",
    "create",
    "describe",
    "get",
    "register",
    "resolve",
    "used_by",
]
