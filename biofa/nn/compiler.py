"""Compile a :class:`~biofa.circuit.Circuit` into a :class:`CompiledCircuit` (an ``nn.Module``).

The circuit's projections into each area are grouped into batched ops
(:class:`~biofa.nn.group.ProjectionGroup`: one conv/linear weight per group), each area becomes an
:class:`~biofa.nn.area.AreaModule`, and the rules that act on areas get their hooks inserted
(:class:`biofa.rules.AreaRule`: a :class:`~biofa.rules.DeliverError` hook on the area's output, a
:class:`~biofa.rules.CrossingHook` on its nonlinearity). Nothing here knows a particular rule:
every decision is taken from the rule's declared type.

Determinism: every tensor is drawn from a generator seeded by ``(seed, purpose, name)``
(:mod:`biofa.nn.seeds`), so the same seed gives the same forward weights whatever the feedback
rules are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from biofa import rules
from biofa.circuit import Circuit, FeedbackPathway, Projection
from biofa.circuit.kind import UnweightedKind, WeightedKind
from biofa.circuit.validation import infer_shapes
from biofa.nn.area import AreaModule, HookModule
from biofa.nn.function import CaptureError, ErrorBus, GradientMode
from biofa.nn.group import ProjectionGroup, Slice
from biofa.nn.seeds import derive_seed
from biofa.rules import AfterStep, AreaContext, AreaRule, CrossingHook, DeliverError

__all__ = ["CompiledCircuit", "compile"]


class CompiledCircuit(nn.Module):
    """A circuit as a trainable ``nn.Module``: ``forward(x) -> logits``.

    Attributes
    ----------
    circuit, input_shape, num_classes, shapes, order
        The declaration, the data's shape and class count, per-area shapes, area order.
    groups
        ``ModuleDict`` of :class:`~biofa.nn.group.ProjectionGroup` (one batched weight each).
    areas
        ``ModuleDict`` of :class:`~biofa.nn.area.AreaModule` (every area but the input).
    hooks
        ``ModuleDict`` area -> :class:`~biofa.nn.area.HookModule`: the
        :class:`~biofa.rules.DeliverError` hooks (direct rules) and their tensors.
    mode
        The :class:`~biofa.nn.function.GradientMode` every Function of this model reads
        (:meth:`exact_gradients`).
    """

    def __init__(
        self, circuit: Circuit, input_shape: tuple[int, int, int], num_classes: int, seed: int = 0
    ):
        super().__init__()
        circuit.validate()
        rules.check(circuit)
        self.circuit = circuit
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.shapes = infer_shapes(circuit, self.input_shape, num_classes)
        self.order = circuit.topological_order()
        self.mode = GradientMode()
        pathways = rules.resolve(circuit)
        direct = {pw.lower: pw for pw in pathways if _is_direct(pw)}
        layerwise = {(pw.lower, pw.upper): pw for pw in pathways if not _is_direct(pw)}
        deliveries = {lower: rules.create(pw.rule, **pw.options) for lower, pw in direct.items()}
        self.areas = nn.ModuleDict()
        self.groups = nn.ModuleDict()
        self.group_names: dict[str, list[str]] = {}
        #: area -> ``(source, transform)`` of its unweighted projections (identity, shortcuts)
        self.unweighted: dict[str, list[tuple[str, Any]]] = {}
        for name in self.order:
            area = circuit.areas[name]
            if area.role == "input":
                continue
            self.areas[name] = AreaModule(area, self.shapes[name], self.mode)
            self.unweighted[name] = [
                (p.source, _transform(p, self.shapes))
                for p in circuit.incoming(name)
                if not isinstance(p.kind, WeightedKind)
            ]
            self.group_names[name] = []
            for key, members in _group(circuit.incoming(name), layerwise, deliveries).items():
                gname = "+".join(p.name for p in members)
                rule = rules.create(key[1], **dict(key[2]))
                self.groups[_key(gname)] = ProjectionGroup(
                    gname, members, circuit, self.shapes, rule, not key[3], seed, self.mode
                )
                self.group_names[name].append(_key(gname))
        self.hooks = nn.ModuleDict()
        for lower, rule in deliveries.items():
            hook = rule.area_hook() if isinstance(rule, AreaRule) else None
            if not isinstance(hook, DeliverError):
                raise TypeError(f"rule {rule.name!r}: a direct rule's area hook must deliver")
            pw = direct[lower]
            context = AreaContext(
                pw.name, lower, tuple(self.shapes[lower].out), num_classes, circuit.init
            )
            self.hooks[lower] = HookModule(hook, context, seed, self.mode)
        self.readout = circuit.readout_area.name
        for name in self.areas:
            self.areas[name].crossing = self._crossing(name)

    def _crossing(self, area: str) -> CrossingHook | None:
        """The crossing hook of ``area``'s nonlinearity: from the rules of the groups leaving it,
        which must then all be the same rule with the same options."""
        outgoing = [g.rule for g in self.groups.values() if area in g.sources]
        hooks = [r.area_hook() for r in outgoing if isinstance(r, AreaRule)]
        crossing = [h for h in hooks if isinstance(h, CrossingHook)]
        if not crossing:
            return None
        first = next(r for r in outgoing if isinstance(r, AreaRule))
        if len(crossing) < len(outgoing) or any(
            (type(r), r.options) != (type(first), first.options) for r in outgoing
        ):
            names = sorted({r.name for r in outgoing})
            raise ValueError(
                f"area {area!r}: its outgoing projections use rules {names}; "
                f"{first.name!r} defines how the error crosses the area's "
                "nonlinearity, so every projection leaving it must use that rule "
                "with the same options"
            )
        return crossing[0]

    @contextmanager
    def exact_gradients(self) -> Iterator[CompiledCircuit]:
        """Within it, backward passes through this model compute exact gradients whatever the
        rules (the error goes back through ``W``, hooks pass the true error through); the
        shadow pass differentiates one graph with the rules and exactly."""
        before, self.mode.exact = self.mode.exact, True
        try:
            yield self
        finally:
            self.mode.exact = before

    def after_step(self, step: int, seed: int) -> None:
        """Run the :class:`~biofa.rules.AfterStep` rules' hooks (optimiser step ``step``)."""
        with torch.no_grad():
            for group in self.groups.values():
                if isinstance(group.rule, AfterStep):
                    device = group.weight.device
                    gen = torch.Generator(device=device).manual_seed(
                        derive_seed(seed, "after_step", group.name, str(step))
                    )
                    fb = {k: v for k, v in group.feedback.items()}
                    group.rule.after_step(group.weight.detach(), fb, gen, step)

    def forward(self, x: Tensor) -> Tensor:
        bus = ErrorBus() if len(self.hooks) else None
        acts = {self.order[0]: x}
        for name in self.order[1:]:
            pre, bias_added = None, False
            area = self.areas[name]
            for key in self.group_names[name]:
                group = self.groups[key]
                bias = None
                if area.bias is not None and not bias_added and group.norm is None:
                    bias, bias_added = area.bias, True
                y = group([acts[s] for s in group.sources], bias)
                pre = y if pre is None else pre + y
            for source, transform in self.unweighted[name]:
                y = transform(acts[source])
                pre = y if pre is None else pre + y
            h = area(pre, bias_added)
            if name in self.hooks:
                h = self.hooks[name](h, bus)
            acts[name] = h
        logits = acts[self.readout]
        return logits if bus is None else CaptureError.apply(logits, bus)

    # -- views for metrics --------------------------------------------------------------------
    def projection_slices(self) -> list[tuple[Slice, ProjectionGroup]]:
        """Every weighted projection with the group it is batched into."""
        return [(s, g) for g in self.groups.values() for s in g.slices]

    def feedback_parameters(self) -> list[nn.Parameter]:
        params = [p for g in self.groups.values() for p in g.feedback.values()]
        params += [p for h in self.hooks.values() for p in h.feedback.values()]
        return params

    def forward_parameters(self) -> list[nn.Parameter]:
        fb = {id(p) for p in self.feedback_parameters()}
        return [p for p in self.parameters() if id(p) not in fb]


def _is_direct(pathway: FeedbackPathway) -> bool:
    return issubclass(rules.get(pathway.rule), rules.DirectFeedbackRule)


def _group(
    incoming: list[Projection],
    layerwise: dict[tuple[str, str], FeedbackPathway],
    tapped: dict,
) -> dict[tuple, list[Projection]]:
    """Projections into one area by ``(signature, rule, options, source tapped, unique)``;
    a projection with its own batch norm is a group of its own."""
    groups: dict[tuple, list[Projection]] = {}
    for p in incoming:
        if not isinstance(p.kind, WeightedKind):
            continue
        pw = layerwise.get((p.source, p.target))
        rule = pw.rule if pw else "backprop"
        options = tuple(sorted(pw.options.items())) if pw else ()
        unique = p.name if p.kind.batch_norm else ""
        key = (p.kind.signature(), rule, options, p.source in tapped, unique)
        groups.setdefault(key, []).append(p)
    return groups


def _transform(p: Projection, shapes: dict) -> Any:
    """The transform an unweighted projection adds to its target's summed input."""
    if not isinstance(p.kind, UnweightedKind):
        raise TypeError(
            f"projection {p.name!r}: kind {type(p.kind).__name__} is neither a WeightedKind nor "
            "an UnweightedKind (biofa.circuit.kind)"
        )
    return p.kind.build_transform(shapes[p.source].out, shapes[p.target].pre)


def _key(name: str) -> str:
    return name.replace("->", "__to__").replace(".", "_").replace("+", "__and__")


def compile(
    circuit: Circuit, *, input_shape: tuple[int, int, int], num_classes: int, seed: int = 0
) -> CompiledCircuit:
    """Build the trainable network for ``circuit`` on data of ``input_shape`` (C, H, W) with
    ``num_classes`` classes; every tensor drawn from ``seed`` (see the module docstring).

    The spiking back-end builds from a compiled (trained) circuit:
    :func:`biofa.spiking.to_brian2`.
    """
    return CompiledCircuit(circuit, input_shape, num_classes, seed)
