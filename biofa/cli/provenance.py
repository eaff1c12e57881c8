"""What a run's file records about where it came from: the resolved configuration (``run_config``)
and the global attributes (spec source and hash, command line, biofa version), built here once
for every way the command line trains a point."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from biofa._version import __version__
from biofa.cli.spec import Point, Spec

__all__ = ["jsonable", "run_attrs", "run_config"]


def jsonable(value: Any) -> Any:
    """``value`` with tuples as lists and anything JSON cannot hold as its ``repr``."""
    return json.loads(json.dumps(value, default=repr))


def run_config(spec: Spec, point: Point) -> dict[str, Any]:
    """The resolved configuration of ``point``: spec, run name, circuit keywords, ``Train``."""
    return {
        "spec": spec.name,
        "spec_path": str(spec.path),
        "run": point.name,
        "circuit_name": point.circuit.name,
        "circuit": jsonable(point.circuit_kwargs),
        "train": jsonable(dataclasses.asdict(point.train)),
    }


def run_attrs(spec: Spec, point: Point, command: str = "") -> dict[str, str]:
    """The global attributes of ``point``'s file: title, source, the spec's text and hash and,
    when given, the command line."""
    attrs = {
        "title": f"biofa run {point.name} of {spec.name}",
        "source": f"biofa {__version__}",
        "spec_source": spec.source_text,
        "spec_sha256": spec.sha256,
    }
    if command:
        attrs["command"] = command
    return attrs
