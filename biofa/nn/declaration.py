"""A circuit's declaration as plain data: what a model file stores to rebuild its circuit.

:func:`encode` turns a :class:`~biofa.circuit.Circuit` (its areas, populations, projections with
their kinds, feedback pathways with rule options: whatever the declaration holds) into nested
``dict``/``list``/``str``/number values, which ``torch.load(weights_only=True)`` reads back and
which never execute code; :func:`decode` rebuilds an equal circuit. The encoding is generic over
the declaration's classes -- frozen dataclasses (``Area``, ``Population``, every projection kind)
and the ``Circuit`` object's attributes -- so a new kind or a new declaration field needs no edit
here. Only classes of the ``biofa`` package, or of modules already imported (a user's own kind),
are rebuilt; :func:`fingerprint` is the SHA-256 of the encoding (a checkpoint compares it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import sys
from typing import Any

from biofa.circuit import Circuit
from biofa.circuit.kind import ProjectionKind

__all__ = ["decode", "encode", "fingerprint"]

_PLAIN = (str, int, float, bool, type(None))


def encode(value: Any) -> Any:
    """``value`` as plain data (``dict``/``list``/``str``/numbers/``None``), tagged by type."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy/torch scalar
        return encode(value.item())
    name = f"{type(value).__module__}:{type(value).__qualname__}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"object": name, "fields": fields}
    if isinstance(value, Circuit):
        return {"object": name, "state": encode(dict(vars(value)))}
    raise TypeError(
        f"a circuit holding {type(value).__name__} ({value!r:.60}) cannot be stored in a model "
        "file: declarations hold numbers, strings, tuples, dicts and dataclasses"
    )


def decode(data: Any) -> Any:
    """The value :func:`encode` gave ``data`` for (``ValueError`` for a class it cannot find)."""
    if isinstance(data, _PLAIN):
        return data
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict) or len(data) not in (1, 2):
        raise ValueError(f"not an encoded declaration: {data!r:.80}")
    if "tuple" in data:
        return tuple(decode(v) for v in data["tuple"])
    if "dict" in data:
        return {decode(k): decode(v) for k, v in data["dict"]}
    cls = _class(data["object"])
    if "state" in data:
        obj = cls.__new__(cls)
        obj.__dict__.update(decode(data["state"]))
        return obj
    fields = {k: decode(v) for k, v in data["fields"].items()}
    init = {f.name for f in dataclasses.fields(cls) if f.init}
    obj = cls(**{k: v for k, v in fields.items() if k in init})
    for key, value in fields.items():
        if key not in init:
            object.__setattr__(obj, key, value)
    return obj


def fingerprint(circuit: Circuit) -> str:
    """SHA-256 of the circuit's encoded declaration: equal for equal declarations."""
    text = json.dumps(encode(circuit), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _class(name: str) -> type:
    module, _, qualname = name.partition(":")
    if module == "biofa" or module.startswith("biofa."):
        importlib.import_module(module)
    found = sys.modules.get(module)
    cls = _lookup(found, qualname) if found is not None else _user_kind(qualname)
    if not isinstance(cls, type) or not (dataclasses.is_dataclass(cls) or issubclass(cls, Circuit)):
        raise ValueError(
            f"the stored circuit uses {qualname} from module {module!r}, which is not imported: "
            "import the module that defines it (e.g. load its spec) first"
        )
    return cls


def _lookup(module: Any, qualname: str) -> Any:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def _user_kind(qualname: str) -> type | None:
    """A projection kind of that name defined in a module imported under another name (a spec
    file is imported as ``_biofa_spec_<stem>_<n>``), when exactly one such kind exists."""
    found, todo = [], [ProjectionKind]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__qualname__ == qualname:
            found.append(cls)
    return found[0] if len(found) == 1 else None
