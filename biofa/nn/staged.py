r"""An area that computes its populations in stages: within-area wiring and divisive inhibition.

An area whose populations receive from each other (feedforward inhibition), have their own
nonlinearity or bias, receive divisive inhibition, or are targeted one by one is a
:class:`StagedArea`. Its forward takes the outputs of the projection groups from other areas
(each covering some of its populations' rows) and runs the stages of
:func:`biofa.circuit.wiring.stages`: in each stage, first the within-area groups into it (reading
the populations computed before, on the area's grid), then each population of the stage,

.. math::
    a = \sum_{\text{subtractive}} W r, \qquad
    z = g \odot \frac{a}{\gamma} \;\text{ if divisive, }\;
    \gamma = \sum_{\text{divisive}} |W| (e^{\alpha} \odot r) + \epsilon, \qquad
    h = f(\mathrm{norm}(z + b)),

with ``g >= 0`` one gain per unit (``|G|``, or ``G`` clamped at 0 under
``Circuit(constraint="clamp")``), ``epsilon = 1e-8`` and ``f`` the population's nonlinearity
(Cornford et al. 2021: ``z = g (z_E - W_EI z_I) / gamma + b``). The area's output is the channel
concatenation of the populations other areas read (all of them, unless only some are read: local
interneurons stay inside; the readout's: its class scores), pooled
(:func:`biofa.circuit.wiring.output_spans`).

**The error crossing a division.** Under backprop the whole forward is differentiated by
autograd. Under a feedback rule the division is treated like the unit's nonlinearity: a local
computation of the target neuron, crossed by its exact derivative,
:math:`\partial z/\partial a = g/\gamma`, :math:`\partial z/\partial \gamma = -g a/\gamma^2`,
which needs only the neuron's own ``a``, ``gamma`` and ``g``; what the rule replaces is the
*synaptic* transport: the error reaches the interneurons through the rule's ``B`` in place of
``W`` on both paths (the subtractive ``B^T \delta_a`` and the shunting ``e^\alpha \odot B^T
\delta_\gamma``, both with the one ``B``, :class:`biofa.nn.group.ProjectionGroup`),
and the rule's weight update is the local product of those errors with ``r`` and
``e^\alpha r``. A rule that redefines the nonlinearity's crossing (EKDAA) does so per
population; the division keeps its derivative.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from biofa.circuit import Area
from biofa.circuit.validation import AreaShape
from biofa.circuit.wiring import Span
from biofa.nn.area import ACTIVATIONS, pool
from biofa.nn.function import CrossNonlinearity, GradientMode
from biofa.rules import CrossingHook

__all__ = ["EPSILON", "StagedArea", "Tap"]

EPSILON = 1e-8


class Tap(nn.Module):
    """Identity: a population's activity passes through it, so a forward hook can see it (the
    shadow pass measures the error arriving at each population)."""

    def forward(self, h: Tensor) -> Tensor:
        return h


class StagedArea(nn.Module):
    """An area computed population by population (module docstring)."""

    staged = True

    def __init__(
        self,
        area: Area,
        shape: AreaShape,
        mode: GradientMode,
        populations: list[Span],
        outputs: list[str],
        stages: list[tuple[str, ...]],
        divisive: set[str],
        clamp: bool,
    ):
        super().__init__()
        self.area, self.mode, self.clamp = area, mode, clamp
        self.spans = {s.name: s for s in populations}
        self.stages = stages
        self.outputs = outputs
        self.bias = None  # per population: ``biases``
        self.crossing = None
        self.crossings: dict[str, CrossingHook | None] = {}
        self.biases = nn.ParameterDict()
        self.norms = nn.ModuleDict()
        self.gains = nn.ParameterDict()
        self.taps = nn.ModuleDict({s.name: Tap() for s in populations})
        self.activations = {}
        spatial = len(shape.pre) == 3
        for s in populations:
            p = s.population
            if p.bias if p.bias is not None else area.bias:
                self.biases[s.name] = nn.Parameter(torch.zeros(s.size))
            if area.batch_norm:
                self.norms[s.name] = nn.BatchNorm2d(s.size) if spatial else nn.BatchNorm1d(s.size)
            if s.name in divisive:
                self.gains[s.name] = nn.Parameter(torch.ones(s.size))
            self.activations[s.name] = ACTIVATIONS[area.nonlinearity_of(p)]
        # what each population does, decided once (the forward runs every step)
        self._steps = {
            s.name: (s.name in self.gains, s.name in self.biases, s.name in self.norms)
            for s in populations
        }
        self._plans: dict[str, tuple[list[int], list[tuple[str, bool]]]] = {}

    def forward(self, external: list[tuple], within: list[list]) -> Tensor:
        """``external``: ``(group, output)`` of every group from other areas; ``within``: per
        stage, the within-area groups into it."""
        drive: dict[str, Tensor] = {}
        shunt: dict[str, Tensor] = {}
        for group, out in external:
            self._distribute(group, out, drive, shunt)
        acts: dict[str, Tensor] = {}
        for stage, groups in zip(self.stages, within, strict=True):
            for group in groups:
                self._distribute(group, group(self._gather(group, acts), None), drive, shunt)
            for name in stage:
                acts[name] = self._population(name, drive[name], shunt.get(name))
        outs = [acts[n] for n in self.outputs]
        return pool(outs[0] if len(outs) == 1 else torch.cat(outs, dim=1), self.area)

    def _population(self, name: str, a: Tensor, gamma: Tensor | None) -> Tensor:
        gained, biased, normed = self._steps[name]
        if gained:
            g = self.gains[name] if self.clamp else self.gains[name].abs()
            a = _channels(g, a) * a / (gamma + EPSILON)
        if biased:
            a = a + _channels(self.biases[name], a)
        if normed:
            a = self.norms[name](a)
        activation, hook = self.activations[name], self.crossings.get(name)
        if hook is not None:
            a = CrossNonlinearity.apply(a, activation, hook, self.mode)
        elif activation is not None:
            a = activation(a)
        return self.taps[name](a)

    def _gather(self, group, acts: dict[str, Tensor]) -> list[Tensor]:
        """A within-area group's input: the populations of its column range, computed before."""
        (cols,) = group.spec.columns
        inside = [s for s in self.spans.values() if cols.start <= s.start and s.stop <= cols.stop]
        like = next(acts[s.name] for s in inside if s.name in acts)
        parts = [acts[s.name] if s.name in acts else _zeros(like, s.size) for s in inside]
        return [parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)]

    def _distribute(self, group, out, drive: dict, shunt: dict) -> None:
        """Add a group's output rows to the drive (and shunting conductance) of its targets."""
        sub, div = out if isinstance(out, tuple) else (out, None)
        plan = self._plans.get(group.spec.name)
        if plan is None:
            plan = self._plans[group.spec.name] = self._plan(group.spec)
        sizes, names = plan
        for part, into in ((sub, drive), (div, shunt)):
            if part is None:
                continue
            # one split (its backward concatenates), not one slice per population (each slice's
            # backward would fill a zero tensor of the whole output)
            pieces = part.split(sizes, dim=1) if len(sizes) > 1 else (part,)
            for (name, target), piece in zip(names, pieces, strict=True):
                if target:
                    into[name] = piece if name not in into else into[name] + piece

    def _plan(self, spec) -> tuple[list[int], list[tuple[str, bool]]]:
        """The populations a group's rows hold (sizes, names) and which of them it reaches
        (masked rows between its targets excluded)."""
        r0, r1 = spec.rows
        inside = [s for s in self.spans.values() if r0 <= s.start and s.stop <= r1]
        reached = {a.partition(".")[2] for b in spec.blocks for a, _, _ in b.rows}
        return [s.size for s in inside], [(s.name, s.name in reached) for s in inside]


def _channels(v: Tensor, like: Tensor) -> Tensor:
    """A per-channel vector shaped to broadcast over ``like`` ``(N, C, ...)``."""
    return v.view(1, -1, *([1] * (like.dim() - 2))).to(like.dtype)


def _zeros(like: Tensor, channels: int) -> Tensor:
    return like.new_zeros((like.shape[0], channels, *like.shape[2:]))
