"""The feedback-rule contract.

A rule describes only what happens on the feedback path and sees only local signals. There are two
scopes:

* ``"projection"`` rules (:class:`FeedbackRule`) replace the forward weight ``W`` of one projection
  on the way back: the error reaching the projection's input is ``op_input_grad(delta, B_eff)``
  with ``B_eff = effective_feedback(W, fb)`` (``delta @ B_eff`` for a dense projection, the
  transposed convolution with kernel ``B_eff`` for a conv one). ``B_eff`` has ``W``'s shape. The
  forward weight's update is always the local product of the error with the input
  (``delta^T x``, or ``conv2d_weight``).
* ``"direct"`` rules (:class:`DirectFeedbackRule`) deliver the readout's error ``e`` straight to a
  hidden area through their own tensors (Nøkland 2016), replacing whatever error the area's
  outgoing projections would have sent back.

Feedback tensors are ``nn.Parameter``s created by ``init_feedback``: learned ones
(``requires_grad=True``) receive the rule's pseudo-gradient from ``feedback_grads`` through the
autograd Function in :mod:`biofa.nn.ops`, so every optimiser, AMP, checkpoints and DDP treat them
like
any parameter. Fixed ones never change.
"""

from __future__ import annotations

import abc
import inspect
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor


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
    op: Any


@dataclass(frozen=True)
class FeedbackContext:
    """What a projection group's structure tells its rule at init (never values; may be ignored).

    ``upper`` is the group's target area (where the error comes from) and ``lowers`` its source
    areas. ``out_signs`` has one entry per output channel of ``W`` (the sign of the upper area's
    population of that unit/channel: +1 E, -1 I, 0 Units) and ``in_signs`` one per index of ``W``'s
    input dimension (the source populations' signs, repeated over positions for a flattening
    dense projection). ``slices`` lists ``(projection, start, stop)``: where each batched
    projection sits along ``W``'s input dimension.
    """

    name: str
    upper: str
    lowers: tuple[str, ...]
    out_signs: tuple[int, ...]
    in_signs: tuple[int, ...]
    slices: tuple[tuple[str, int, int], ...]


class _RuleBase(abc.ABC):  # noqa: B024 - shared options plumbing; subclasses hold the abstracts
    name: ClassVar[str] = ""
    scope: ClassVar[str] = "projection"
    supports: ClassVar[frozenset[str]] = frozenset({"linear", "conv2d"})
    #: option name -> default value; the spec passes options as ``feedback(..., key=value)``.
    defaults: ClassVar[dict[str, Any]] = {}

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


class FeedbackRule(_RuleBase):
    """A projection-scoped rule (see the module docstring)."""

    scope: ClassVar[str] = "projection"

    def init_feedback(
        self, weight: Tensor, generator: torch.Generator, context: FeedbackContext | None = None
    ) -> dict[str, Feedback]:
        """The rule's feedback tensors for a projection with forward weight ``weight``.

        Overrides may leave out ``context`` (see :func:`init_feedback`).
        """
        return {}

    @abc.abstractmethod
    def effective_feedback(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        """The tensor used in place of ``weight`` on the way back (``weight``'s shape)."""

    def feedback_grads(self, local: LocalSignals, fb: dict[str, Tensor]) -> dict[str, Tensor]:
        """Pseudo-gradients (descent directions, like ``.grad``) of the learned feedback tensors."""
        return {}

    # -- optional hooks: a rule overrides only those it needs (see :func:`overrides`) ----------
    def error_through(
        self,
        grad_output: Tensor,
        weight: Tensor,
        fb: dict[str, Tensor],
        op: Any,
        input_shape: tuple[int, ...],
    ) -> Tensor | None:
        """The error sent to the projection's input, when cheaper than forming ``B_eff``.

        E.g. two feedback matrices applied in sequence. ``None`` (default) means
        ``op.input_grad(grad_output, effective_feedback(weight, fb))``; an override must return
        exactly that value (up to rounding).
        """
        return None

    def cross_nonlinearity(self, pre: Tensor, grad: Tensor, activation: Any) -> Tensor | None:
        """The error at the input ``pre`` of the *lower* area's nonlinearity ``activation``.

        ``grad`` is the error arriving at its output. ``None`` (default): ``activation``'s
        derivative (autograd). Used by the compiler for a hidden area whose outgoing projections
        all use this rule (e.g. EKDAA's target differences, which never use a derivative).
        """
        return None

    def after_step(
        self, weight: Tensor, fb: dict[str, Tensor], generator: torch.Generator, step: int
    ) -> None:
        """Called by the trainer after optimiser step ``step`` (1-based), under ``no_grad``.

        May update ``fb`` in place (e.g. a weight-mirror phase); ``generator`` is derived from
        the run's seed, the group and ``step``, so a resumed run draws the same numbers. State
        needed to continue must live in ``fb`` (it is checkpointed), never in the rule.
        """

    def probe(
        self, weight: Tensor, fb: dict[str, Tensor], start: int, stop: int
    ) -> dict[str, Tensor]:
        """Extra per-projection metrics (registered names, 0-d tensors) for the projection
        whose columns of ``weight`` are ``start:stop`` (see :mod:`biofa.measure.probes`)."""
        return {}


def overrides(rule: object, hook: str) -> bool:
    """Whether ``rule``'s class overrides the optional :class:`FeedbackRule` hook ``hook``."""
    base = getattr(FeedbackRule, hook)
    return isinstance(rule, FeedbackRule) and getattr(type(rule), hook) is not base


def init_feedback(
    rule: FeedbackRule, weight: Tensor, generator: torch.Generator, context: FeedbackContext
) -> dict[str, Feedback]:
    """``rule.init_feedback``, passing ``context`` only if the rule's override accepts it."""
    if "context" in inspect.signature(rule.init_feedback).parameters:
        return rule.init_feedback(weight, generator, context=context)
    return rule.init_feedback(weight, generator)


class DirectFeedbackRule(_RuleBase):
    """A rule delivering the readout's error straight to a hidden area."""

    scope: ClassVar[str] = "direct"
    supports: ClassVar[frozenset[str]] = frozenset({"linear", "conv2d"})

    @abc.abstractmethod
    def init_feedback(
        self, area_shape: tuple[int, ...], num_classes: int, generator: torch.Generator
    ) -> dict[str, Feedback]:
        """Feedback tensors carrying a ``num_classes`` error to an area of ``area_shape``."""

    @abc.abstractmethod
    def deliver(
        self, output_error: Tensor, fb: dict[str, Tensor], area_shape: tuple[int, ...]
    ) -> Tensor:
        """The error (``(N, *area_shape)``) the area receives for readout error ``(N, classes)``."""

    def feedback_grads(self, output_error: Tensor, fb: dict[str, Tensor]) -> dict[str, Tensor]:
        return {}


def fan_in(weight: Tensor) -> int:
    """Inputs per output unit: ``in`` for a dense weight, ``in * k * k`` for a conv kernel."""
    return weight[0].numel()


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


def he_normal_like(weight: Tensor, generator: torch.Generator, gain: float) -> Tensor:
    """:func:`he_normal` with ``weight``'s shape, fan-in, device and dtype: a random feedback
    tensor drawn the way forward weights are."""
    return he_normal(weight.shape, fan_in(weight), generator, gain, weight.device, weight.dtype)
