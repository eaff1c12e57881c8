"""The metric registry: what can be recorded, where its inputs come from, how it is computed.

Every recordable metric is a :class:`MetricInfo` in :data:`METRICS` (name, CF ``long_name`` and
``units``, ``per`` run or projection). What computes it is part of its entry -- the registry is the
truth: the probes, the shadow pass and the run-level recording iterate the registered metrics and
call their functions, so adding a metric is one decorated function, in or outside biofa::

    @biofa.measure.metric(long_name="spectral norm of W", units="1", inputs=("weight",))
    def weight_spectral_norm(weight):
        return torch.linalg.matrix_norm(weight.flatten(1), ord=2)

``inputs`` names the tensors the function takes, all from one of three sources (dataclasses below):

* :class:`ProjectionInputs` (per projection, every record step: the projection's ``weight``
  slice, the rule's effective ``feedback`` slice, the rule's raw ``feedback_tensors``);
* :class:`ShadowInputs` (per projection, from the shadow backward of :mod:`biofa.measure.shadow`:
  ``delivered_error``/``reference_error`` at the projection's source area, ``update`` /
  ``reference_update`` of its weight, ``feedback_update`` of its learned feedback);
* :class:`RunInputs` (per run: the ``model`` and the step's ``inputs`` and ``targets``).

A metric whose input is ``None`` for a projection (no feedback is sent from the input area, say)
is not recorded there (NaN in the file). Values the training loop supplies itself (loss,
accuracies, learning rate, wall time) are registered without a function
(:func:`register_metric`). Rules declare metrics of their own (:class:`biofa.rules.Probes`,
their ``metrics`` attribute); :func:`registry` adds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from torch import Tensor

from biofa import rules

__all__ = [
    "METRICS",
    "MetricInfo",
    "ProjectionInputs",
    "RunInputs",
    "ShadowInputs",
    "metric",
    "register_metric",
    "registered",
]

Per = Literal["run", "projection"]
PER_KINDS = ("run", "projection")
# Names the output schema already uses for coordinates and variables (DESIGN section 6).
RESERVED_NAMES = frozenset(
    {"step", "epoch", "projection", "source", "target", "op", "feedback_rule", "run_config"}
    | {"status"}
)


@dataclass
class ProjectionInputs:
    """What a projection metric may read at a record step (``feedback`` is ``None`` where no
    error is sent, or the rule's feedback has no ``W`` shape)."""

    weight: Tensor
    feedback: Tensor | None
    feedback_tensors: dict[str, Tensor]


@dataclass
class ShadowInputs:
    """What a projection metric may read from the shadow backward (``None`` where absent)."""

    delivered_error: Tensor | None
    reference_error: Tensor | None
    update: Tensor | None
    reference_update: Tensor | None
    feedback_update: Tensor | None


@dataclass
class RunInputs:
    """What a run metric may read at a record step."""

    model: Any
    inputs: Tensor
    targets: Tensor


SOURCES = (ProjectionInputs, ShadowInputs, RunInputs)


@dataclass(frozen=True)
class MetricInfo:
    """Description of a recordable metric.

    Parameters
    ----------
    name
        Variable name in the output file.
    long_name
        Human-readable description (CF ``long_name``).
    units
        CF units: ``"degree"``, ``"1"`` (dimensionless) or ``"s"``.
    per
        ``"run"``: one value per record step, dims ``(rule, seed, ..., step)``.
        ``"projection"``: one value per projection, dims ``(rule, seed, ..., step, projection)``.
    fn
        The function computing it from ``inputs`` (``None``: the value is supplied by whoever
        records it -- the training loop, or a rule's probe).
    inputs
        Names of the fields of ``source`` that ``fn`` takes, in order.
    source
        :class:`ProjectionInputs`, :class:`ShadowInputs` or :class:`RunInputs` (``None`` with
        ``fn=None``).
    """

    name: str
    long_name: str
    units: str
    per: Per
    fn: Callable[..., Tensor] | None = None
    inputs: tuple[str, ...] = ()
    source: type | None = field(default=None, compare=False)

    def compute(self, values: Any) -> Tensor | None:
        """``fn`` of the named fields of ``values`` (``None`` if any of them is ``None``)."""
        args = [getattr(values, name) for name in self.inputs]
        return None if any(a is None for a in args) else self.fn(*args)


METRICS: dict[str, MetricInfo] = {}


def _source(name: str, inputs: tuple[str, ...], per: Per) -> type:
    for source in SOURCES:
        names = {f.name for f in fields(source)}
        if inputs and set(inputs) <= names:
            want = "run" if source is RunInputs else "projection"
            if per != want:
                raise ValueError(f"metric {name!r}: inputs {inputs} are per {want}, not per {per}")
            return source
    offered = "; ".join(f"{s.__name__}: {', '.join(f.name for f in fields(s))}" for s in SOURCES)
    raise ValueError(f"metric {name!r}: inputs {inputs} are not all from one of ({offered})")


def register_metric(
    name: str,
    long_name: str,
    units: str,
    per: Per,
    fn: Callable[..., Tensor] | None = None,
    inputs: tuple[str, ...] = (),
) -> MetricInfo:
    """Register a metric so that it is computed (when ``fn`` is given) and recorded.

    Re-registering a name with identical information is a no-op; with different information it is
    an error (two meanings for one variable name would make files ambiguous).
    """
    if not name.isidentifier():
        raise ValueError(f"metric name {name!r} must be a Python identifier")
    if name in RESERVED_NAMES:
        raise ValueError(f"metric name {name!r} is reserved by the output schema")
    if per not in PER_KINDS:
        raise ValueError(f"metric {name!r}: per={per!r}; allowed: {', '.join(PER_KINDS)}")
    inputs = tuple(inputs)
    if fn is not None and not inputs:
        raise ValueError(f"metric {name!r}: a function needs `inputs` (the fields it takes)")
    source = _source(name, inputs, per) if fn is not None else None
    info = MetricInfo(name, long_name, units, per, fn, inputs, source)
    old = METRICS.get(name)
    if old is not None and (old.long_name, old.units, old.per) != (long_name, units, per):
        raise ValueError(f"metric {name!r} is already registered as {old}")
    if old is None or fn is not None:
        METRICS[name] = info
    return METRICS[name]


def metric(
    *, long_name: str, units: str, inputs: tuple[str, ...], per: Per = "projection"
) -> Callable[[Callable], Callable]:
    """Decorator: register a tensor function as a metric under its ``__name__`` (module
    docstring); returns the function unchanged."""

    def deco(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        register_metric(fn.__name__, long_name, units, per, fn, inputs)
        return fn

    return deco


def registered() -> dict[str, MetricInfo]:
    """:data:`METRICS` with every registered rule's declared metrics added."""
    for name in rules.available():
        cls = rules.get(name)
        if issubclass(cls, rules.Probes):
            for m in cls.metrics:
                register_metric(m.name, m.long_name, m.units, "projection")
    return METRICS


def computed(source: type) -> list[MetricInfo]:
    """The registered metrics computed from ``source`` inputs, in registration order."""
    return [m for m in METRICS.values() if m.fn is not None and m.source is source]
