"""Projection kinds, declaration side: what a projection needs from its source and gives its target.

A *projection kind* is one file under :mod:`biofa.kinds` holding two classes: a subclass of
:class:`ProjectionKind` (this module: the declaration, no torch) and the op that computes it
(:class:`biofa.kinds.ProjectionOp`: forward and the two gradient products), or, for a kind without
a weight (:class:`UnweightedKind`: an identity skip, a subsampling shortcut, a pooling step), the
fixed transform of the source's activity it adds to the target. The declaration owns
everything that can be decided before tensors exist -- which sources it can read, the shape of its
output, the shape and fan-in of its weight, the signature that decides which projections into one
area are batched into one weight -- and :meth:`WeightedKind.build_op` hands the compiler the op.
Validation, shape inference and the compiler only ever talk to these two interfaces, so a new kind
(a locally connected layer, say) is one file and no edit elsewhere.

Shapes are those of one example: ``(C, H, W)`` for a spatial area, ``(C,)`` for a vector.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

__all__ = ["ProjectionKind", "UnweightedKind", "WeightedKind"]


class ProjectionKind(abc.ABC):
    """How one area drives another (abstract; concrete kinds are final dataclasses).

    Subclasses are frozen dataclasses with a ``batch_norm: bool`` field: ``True`` normalises the
    projection's output on its own before it is summed with the area's other inputs.
    """

    #: the op's name in outputs (the ``op`` coordinate of every projection)
    op: ClassVar[str]
    batch_norm: bool

    @abc.abstractmethod
    def signature(self) -> tuple:
        """Projections into one area with equal signatures (and equal rules) share one weight."""

    @abc.abstractmethod
    def check_source(self, projection: str, source: str, spatial: bool) -> None:
        """Raise ``ValueError`` naming ``projection`` if it cannot read ``source`` (whose output is
        spatial when ``spatial``)."""

    @abc.abstractmethod
    def spatial_output(self, source_spatial: bool) -> bool:
        """Whether the projection's output (its target's summed input) is spatial."""

    @abc.abstractmethod
    def output_shape(
        self, projection: str, source_shape: tuple[int, ...], channels: int
    ) -> tuple[int, ...]:
        """The output shape for a source of ``source_shape`` into ``channels`` target channels;
        ``ValueError`` naming ``projection`` when there is none."""

    def columns_per_channel(self, source_shape: tuple[int, ...]) -> int:
        """How many entries of the weight's input dimension one source channel occupies (1; a
        flattening dense projection: ``H * W``)."""
        return 1


class WeightedKind(ProjectionKind):
    """A kind with a weight, hence an op and a feedback pathway (abstract)."""

    @property
    @abc.abstractmethod
    def op_type(self) -> type:
        """The class of the op :meth:`build_op` returns (what rules' ``supports`` is checked
        against before any tensor exists)."""

    @abc.abstractmethod
    def weight_shape(
        self, out_channels: int, in_columns: int, output_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        """The shape of the weight of ``in_columns`` inputs (sum over the batched sources) into
        ``out_channels`` channels; dimension 0 is always the output channel and dimension 1 the
        input column (rules and Dale's law act along them)."""

    @abc.abstractmethod
    def fan_in(self, weight_shape: tuple[int, ...]) -> int:
        """Inputs per output unit (what initialisers scale by)."""

    def fan_out(self, weight_shape: tuple[int, ...]) -> int:
        """Outputs per input unit as torch counts them for a weight of this shape: the output
        channels times the receptive field (``fan_in / weight_shape[1]``), so ``out * k * k`` for a
        ``k x k`` convolution and ``out`` for a dense weight (what Xavier initialisation and
        BioTorch's feedback scale use)."""
        return weight_shape[0] * (self.fan_in(weight_shape) // weight_shape[1])

    @abc.abstractmethod
    def build_op(self, source_shapes: list[tuple[int, ...]], output_shape: tuple[int, ...]) -> Any:
        """The :class:`biofa.kinds.ProjectionOp` computing this kind for these shapes."""


class UnweightedKind(ProjectionKind):
    """A kind without a weight (abstract): the target's summed input gets a fixed transform of the
    source's activity, ``pre += T(h_source)``.

    It has no op, no feedback pathway and no rule: the error goes back through ``T`` by autograd
    (for the identity, unchanged; for a subsampling shortcut, scattered back to the positions and
    channels it kept). Concrete kinds are frozen dataclasses in :mod:`biofa.kinds` whose
    :meth:`build_transform` returns a torch callable; this declaration stays torch-free.
    """

    batch_norm: ClassVar[bool] = False

    @abc.abstractmethod
    def build_transform(self, source_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> Any:
        """The callable ``T``: a batch ``(N, *source_shape)`` -> ``(N, *output_shape)``, traceable
        by ``torch.func.vmap`` (seed-batched training maps it over seeds)."""
