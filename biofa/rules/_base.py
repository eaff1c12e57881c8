"""The feedback-rule contract: the rule types, the capabilities a rule declares, what it sees.

A rule describes only what happens on the feedback path and sees only local signals. How its error
travels is its *type*:

* :class:`FeedbackRule` -- layer-wise delivery: the rule replaces the forward weight ``W`` of one
  projection on the way back. The error reaching the projection's input is
  ``op.input_grad(delta, B_eff)`` with ``B_eff = effective_feedback(W, fb)`` (``delta @ B_eff``
  for a dense projection, the transposed convolution with kernel ``B_eff`` for a conv one);
  ``B_eff`` has ``W``'s shape. The forward weight's update is always the local product of the
  error with the input (``op.weight_grad``).
* :class:`DirectFeedbackRule` -- direct delivery: the readout's error ``e`` reaches a hidden area
  straight through the rule's own tensors (Nøkland 2016), replacing whatever error the area's
  outgoing projections would have sent back.

What else a rule does is declared by the capability types it inherits (each an abstract class
whose methods the rule implements; the compiler and the trainer check them with ``isinstance``,
never by looking for overridden methods):

* :class:`AfterStep` -- runs after every optimiser step (a weight-mirror phase);
* :class:`CustomErrorPath` -- computes the error it sends back itself (cheaper than forming
  ``B_eff``);
* :class:`CrossesNonlinearity` -- redefines how the error crosses the lower area's nonlinearity
  (EKDAA's target differences, no derivative taken);
* :class:`Probes` -- records metrics of its own, declared in ``metrics``;
* :class:`NativeBackward` -- its feedback *is* ``W`` (backprop): the compiler may run the
  projection under native autograd.

Area-level extension point: a rule that acts on an *area* rather than a projection is an
:class:`AreaRule`; it returns an :class:`AreaHook` that the compiler inserts into its pathway's
lower area -- a :class:`DeliverError` (replaces the error at the area's output; direct rules) or a
:class:`CrossingHook` (replaces the nonlinearity's derivative; :class:`CrossesNonlinearity`).

Feedback tensors are ``nn.Parameter``s created by ``init_feedback``: learned ones
(``requires_grad=True``) receive the rule's pseudo-gradient from ``feedback_grads`` through the
autograd Function in :mod:`biofa.nn.function`, so every optimiser, AMP, checkpoints and DDP treat
them like any parameter. Fixed ones never change. Rules are *abstract or final* (as in equinox): a
concrete rule class is never subclassed; shared machinery lives in abstract bases.
"""

from __future__ import annotations

import abc
import inspect
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from biofa.kinds import ProjectionOp

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
    "he_normal",
    "he_normal_like",
]


@dataclass
class Feedback:
    """A feedback tensor and whether the rule learns it."""

    tensor: Tensor
    learned: bool = False


@dataclass
class LocalSignals:
    """What a projection's synapses can see on the way back (all in the compute dtype).

    ``input`` is the presynaptic activity ``x``, ``grad_output`` the error ``delta`` arriving at
    the projection's output, ``weight`` the forward weight and ``weight_grad`` its update direction
    (``delta^T x``). ``op`` computes the projection's products (``op.input_grad``,
    ``op.weight_grad``, ``op.forward``) for rules that need more of them.
    """

    input: Tensor
    grad_output: Tensor
    weight: Tensor
    weight_grad: Tensor | None
    op: ProjectionOp


@dataclass(frozen=True)
class FeedbackContext:
    """What a projection group's structure tells its rule at init (never values; may be ignored).

    ``upper`` is the group's target area (where the error comes from) and ``lowers`` its source
    areas. ``out_signs`` has one entry per output channel of ``W`` (the sign of the upper area's
    population of that unit/channel: +1 E, -1 I, 0 Units) and ``in_signs`` one per index of ``W``'s
    input dimension (the source populations' signs, repeated over positions for a flattening
    dense projection). ``slices`` lists ``(projection, start, stop)``: where each batched
    projection sits along ``W``'s input dimension, and ``blocks`` ``(projection, row_start,
    row_stop, start, stop)``: where it sits in ``W`` (population wiring: projections into
    different populations of the upper area may share columns). ``fan_in`` is the number of
    inputs per output unit (the kind's, e.g. ``in * k * k`` for a convolution), ``op`` the
    projection's op.
    ``init`` is the circuit's initialisation convention and ``fan_out`` the weight's fan-out as
    torch counts it (``out * k * k`` for a convolution): random feedback tensors are drawn with
    them (:func:`biofa.rules.initializers.draw_like`).
    """

    name: str
    upper: str
    lowers: tuple[str, ...]
    out_signs: tuple[int, ...]
    in_signs: tuple[int, ...]
    slices: tuple[tuple[str, int, int], ...]
    fan_in: int
    op: ProjectionOp
    init: str = "he_normal"
    fan_out: int = 0
    blocks: tuple[tuple[str, int, int, int, int], ...] = ()

    @property
    def row_blocks(self) -> bool:
        """Whether some projection covers only some of ``W``'s rows (population wiring)."""
        rows = len(self.out_signs)
        return any((r0, r1) != (0, rows) for _, r0, r1, _, _ in self.blocks)


@dataclass(frozen=True)
class AreaContext:
    """What an area hook is told at init: its ``name`` (the pathway's, for seeds), the ``area``,
    the area's output ``shape`` for one example, the readout's ``num_classes`` and the circuit's
    initialisation convention ``init``."""

    name: str
    area: str
    shape: tuple[int, ...]
    num_classes: int
    init: str = "he_normal"


@dataclass(frozen=True)
class RuleMetric:
    """A metric a :class:`Probes` rule records per projection: its variable name in the outputs,
    CF ``long_name`` and ``units``."""

    name: str
    long_name: str
    units: str = "1"


class Rule(abc.ABC):  # noqa: B024 - the root: the subclasses below hold the abstract methods
    """The root of every rule: name, options and their checks (not subclassed directly)."""

    name: ClassVar[str] = ""
    #: option name -> default value; the spec passes options as ``feedback(..., key=value)``.
    defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__mro__[1:]:
            if issubclass(base, Rule) and base.name and not inspect.isabstract(base):
                raise TypeError(
                    f"rule class {cls.__name__} subclasses the concrete rule {base.__name__} "
                    f"({base.name!r}): rules are abstract or final; share code through an "
                    "abstract base instead"
                )

    def __init__(self, **options: Any):
        self.check_options(options, f"rule {self.name!r}")
        self.options = {**self.defaults, **options}

    @classmethod
    def check_options(cls, options: dict[str, Any], where: str) -> None:
        unknown = sorted(set(options) - set(cls.defaults))
        if unknown:
            valid = ", ".join(sorted(cls.defaults)) or "none"
            raise ValueError(
                f"{where}: unknown option(s) {', '.join(unknown)} for rule "
                f"{cls.name!r} (valid: {valid})"
            )

    @classmethod
    def summary(cls) -> str:
        """The first line of the rule's docstring."""
        return (cls.__doc__ or cls.name).strip().splitlines()[0]


class FeedbackRule(Rule):
    """Layer-wise delivery: the rule replaces ``W`` on the way back (module docstring)."""

    #: the op classes (:class:`biofa.kinds.ProjectionOp` subclasses) the rule works on
    supports: ClassVar[tuple[type, ...]] = (ProjectionOp,)

    def init_feedback(
        self, weight: Tensor, generator: torch.Generator, context: FeedbackContext
    ) -> dict[str, Feedback]:
        """The rule's feedback tensors for a projection group with forward weight ``weight``."""
        return {}

    @abc.abstractmethod
    def effective_feedback(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        """The tensor used in place of ``weight`` on the way back (``weight``'s shape)."""

    def feedback_grads(self, local: LocalSignals, fb: dict[str, Tensor]) -> dict[str, Tensor]:
        """Pseudo-gradients (descent directions, like ``.grad``) of the learned feedback tensors."""
        return {}


# -- capabilities -------------------------------------------------------------------------------
class NativeBackward(abc.ABC):  # noqa: B024 - a marker: the capability has no method
    """Capability: ``B_eff`` is ``W`` itself and the rule has no tensors (backprop), so the
    compiler may run the projection as the plain op under native autograd."""


class AfterStep(abc.ABC):
    """Capability: something to do after every optimiser step."""

    @abc.abstractmethod
    def after_step(
        self, weight: Tensor, fb: dict[str, Tensor], generator: torch.Generator, step: int
    ) -> None:
        """Called by the trainer after optimiser step ``step`` (1-based), under ``no_grad``.

        May update ``fb`` in place (e.g. a weight-mirror phase); ``generator`` is derived from
        the run's seed, the group and ``step``, so a resumed run draws the same numbers. State
        needed to continue must live in ``fb`` (it is checkpointed), never in the rule.
        """


class CustomErrorPath(abc.ABC):
    """Capability: the rule computes the error it sends back itself."""

    @abc.abstractmethod
    def error_through(
        self,
        grad_output: Tensor,
        weight: Tensor,
        fb: dict[str, Tensor],
        op: ProjectionOp,
        input_shape: tuple[int, ...],
    ) -> Tensor | None:
        """The error sent to the projection's input, when cheaper than forming ``B_eff``.

        Must equal ``op.input_grad(grad_output, effective_feedback(weight, fb))`` up to rounding;
        ``None`` declines (the compiler then forms ``B_eff``).
        """


class Probes(abc.ABC):
    """Capability: per-projection metrics of the rule's own, declared in ``metrics``."""

    metrics: ClassVar[tuple[RuleMetric, ...]] = ()

    @abc.abstractmethod
    def probe(
        self, weight: Tensor, fb: dict[str, Tensor], start: int, stop: int
    ) -> dict[str, Tensor]:
        """Values (0-d tensors) of the declared metrics for the projection whose columns of
        ``weight`` are ``start:stop``."""


# -- the area-level extension point ------------------------------------------------------------
class AreaHook(abc.ABC):  # noqa: B024 - the two hook types below hold the abstract methods
    """What a rule does at one area on the way back (inserted by the compiler; module
    docstring). Its tensors come from :meth:`init_feedback` and live with the area."""

    def init_feedback(
        self, context: AreaContext, generator: torch.Generator
    ) -> dict[str, Feedback]:
        """The hook's tensors for the area ``context`` describes."""
        return {}


class DeliverError(AreaHook):
    """Replaces the error arriving at the area's output with one made from the readout's error;
    the error the area's outgoing projections would send back is then not computed at all."""

    @abc.abstractmethod
    def deliver(
        self, output_error: Tensor, fb: dict[str, Tensor], area_shape: tuple[int, ...]
    ) -> Tensor:
        """The error (``(N, *area_shape)``) the area receives for readout error ``(N, classes)``."""

    def feedback_grads(self, output_error: Tensor, fb: dict[str, Tensor]) -> dict[str, Tensor]:
        """Pseudo-gradients of the hook's learned tensors."""
        return {}


class CrossingHook(AreaHook):
    """Replaces the derivative of the area's nonlinearity on the way back."""

    @abc.abstractmethod
    def cross(self, pre: Tensor, grad: Tensor, activation: Any) -> Tensor:
        """The error at the nonlinearity's input ``pre`` for ``grad`` at its output."""


class AreaRule(abc.ABC):
    """Capability: the rule attaches an :class:`AreaHook` to the lower area of each of its
    pathways."""

    @abc.abstractmethod
    def area_hook(self) -> AreaHook:
        """The hook (the compiler inserts one per lower area)."""


class CrossesNonlinearity(AreaRule):
    """Capability: the error crosses the lower area's nonlinearity as the rule says, not by the
    derivative. Every projection leaving that area must use the rule (checked at compile time)."""

    @abc.abstractmethod
    def cross_nonlinearity(self, pre: Tensor, grad: Tensor, activation: Any) -> Tensor:
        """The error at the input ``pre`` of the lower area's nonlinearity ``activation``
        (``None``: identity) for ``grad`` at its output."""

    def area_hook(self) -> AreaHook:
        return _RuleCrossing(self)


@dataclass(frozen=True)
class _RuleCrossing(CrossingHook):
    """The crossing of a :class:`CrossesNonlinearity` rule, as an area hook."""

    rule: CrossesNonlinearity

    def cross(self, pre: Tensor, grad: Tensor, activation: Any) -> Tensor:
        return self.rule.cross_nonlinearity(pre, grad, activation)


class DirectFeedbackRule(Rule, AreaRule, DeliverError):
    """Direct delivery: the readout's error reaches a hidden area through the rule's tensors.

    A direct rule is its own area hook: ``init_feedback(context, generator)`` makes the tensors
    for the area ``context`` describes and ``deliver`` the area's error.
    """

    @abc.abstractmethod
    def init_feedback(
        self, context: AreaContext, generator: torch.Generator
    ) -> dict[str, Feedback]:
        """Feedback tensors carrying a ``context.num_classes`` error to the area."""

    def area_hook(self) -> AreaHook:
        return self


# -- initialisers -------------------------------------------------------------------------------
def he_normal(
    shape: torch.Size | tuple[int, ...],
    fan: int,
    generator: torch.Generator,
    gain: float = math.sqrt(2.0),
    device=None,
    dtype=None,
) -> Tensor:
    """Samples of N(0, gain^2 / fan): He et al. 2015 initialisation (``gain=sqrt(2)`` for ReLU)."""
    std = gain / math.sqrt(fan)
    noise = torch.randn(tuple(shape), generator=generator, dtype=torch.float32)
    return (noise * std).to(device=device, dtype=dtype)


def he_normal_like(
    weight: Tensor, generator: torch.Generator, gain: float, context: FeedbackContext
) -> Tensor:
    """:func:`he_normal` with ``weight``'s shape, device and dtype and the projection's fan-in: a
    random feedback tensor drawn the way forward weights are."""
    return he_normal(weight.shape, context.fan_in, generator, gain, weight.device, weight.dtype)
