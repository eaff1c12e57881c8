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
from biofa.circuit.wiring import Span, output_spans, spans, split, stages
from biofa.nn.area import AreaModule, HookModule
from biofa.nn.constraints import clamp_
from biofa.nn.function import CaptureError, ErrorBus, GradientMode
from biofa.nn.group import ProjectionGroup, Slice
from biofa.nn.layout import plan_groups
from biofa.nn.seeds import derive_seed
from biofa.nn.staged import StagedArea
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
        assignment = rules.assign(circuit)
        direct = {pw.lower: pw for pw in pathways if _is_direct(pw)}
        deliveries = {lower: rules.create(pw.rule, **pw.options) for lower, pw in direct.items()}
        self.areas = nn.ModuleDict()
        self.groups = nn.ModuleDict()
        self.group_names: dict[str, list[str]] = {}
        #: area -> ``(source, transform)`` of its unweighted projections (identity, shortcuts)
        self.unweighted: dict[str, list[tuple[str, Any]]] = {}
        #: per staged area, the keys of its groups from other areas and, per stage, within it
        self.stage_groups: dict[str, tuple[list[str], list[list[str]]]] = {}
        clamp = circuit.constraint == "clamp"
        for name in self.order:
            area = circuit.areas[name]
            if area.role == "input":
                continue
            specs = plan_groups(circuit, name, self.shapes, num_classes, assignment, set(direct))
            if _staged(circuit, name):
                divisive = {
                    t.partition(".")[2]
                    for spec in specs if spec.mode for b in spec.blocks for t, _, _ in b.rows
                }  # fmt: skip
                self.areas[name] = StagedArea(
                    area, self.shapes[name], self.mode, list(spans(area, num_classes).values()),
                    list(output_spans(circuit, name, num_classes)), stages(circuit, name),
                    divisive, clamp,
                )  # fmt: skip
                self.stage_groups[name] = ([], [[] for _ in self.areas[name].stages])
            else:
                self.areas[name] = AreaModule(area, self.shapes[name], self.mode)
            self.unweighted[name] = [
                (p.source_area, _transform(p, self.shapes))
                for p in circuit.incoming(name)
                if not isinstance(p.kind, WeightedKind)
            ]
            if name in self.stage_groups and self.unweighted[name]:
                raise ValueError(
                    f"area {name!r}: unweighted projections (identity, shortcut, pool) into an "
                    "area with populations wired on their own are not supported yet"
                )
            self.group_names[name] = []
            for spec in specs:
                rule = rules.create(spec.rule, **dict(spec.options))
                key = _key(spec.name)
                self.groups[key] = ProjectionGroup(
                    spec, circuit, self.shapes, num_classes, rule, seed, self.mode
                )
                self.group_names[name].append(key)
                if name in self.stage_groups:
                    external, within = self.stage_groups[name]
                    (external if spec.stage is None else within[spec.stage]).append(key)
        self.hooks = nn.ModuleDict()
        #: area -> ``(hook key, first channel, last channel + 1)`` of direct pathways to one of
        #: its populations (``self.hooks[key]``)
        self.population_hooks: dict[str, list[tuple[str, int, int]]] = {}
        for lower, rule in deliveries.items():
            hook = rule.area_hook() if isinstance(rule, AreaRule) else None
            if not isinstance(hook, DeliverError):
                raise TypeError(f"rule {rule.name!r}: a direct rule's area hook must deliver")
            pw = direct[lower]
            area, pop = split(lower)
            shape = tuple(self.shapes[area].out)
            if pop is not None:
                visible = output_spans(circuit, area, num_classes)
                if pop not in visible:
                    raise ValueError(
                        f"feedback pathway {pw.name!r}: {lower!r} is local to its area (no "
                        "projection out of it reads it), so no error arrives at it from above "
                        "to replace; deliver to a population that projects out"
                    )
                span = visible[pop]
                shape = (span.size, *shape[1:])
                self.population_hooks.setdefault(area, []).append(
                    (_key(lower), span.start, span.stop)
                )
            context = AreaContext(pw.name, lower, shape, num_classes, circuit.init)
            self.hooks[lower if pop is None else _key(lower)] = HookModule(
                hook, context, seed, self.mode
            )
        self.readout = circuit.readout_area.name
        for name, module in self.areas.items():
            if isinstance(module, StagedArea):
                module.crossings = {
                    pop: self._crossing(f"{name}.{pop}", name, span)
                    for pop, span in module.spans.items()
                }
            else:
                module.crossing = self._crossing(name, name, None)

    def _crossing(self, where: str, area: str, span: Span | None) -> CrossingHook | None:
        """The crossing hook of the nonlinearity of ``where`` (an area, or a population ``span``
        of a staged area): from the rules of the groups reading it, which must then all be the
        same rule with the same options."""
        outgoing = [g.rule for g in self.groups.values() if _reads(g, area, span)]
        hooks = [r.area_hook() for r in outgoing if isinstance(r, AreaRule)]
        crossing = [h for h in hooks if isinstance(h, CrossingHook)]
        if not crossing:
            return None
        first = next(r for r in outgoing if isinstance(r, AreaRule))
        if len(crossing) < len(outgoing) or any(
            (type(r), r.options) != (type(first), first.options) for r in outgoing
        ):
            names = sorted({r.name for r in outgoing})
            kind = "area" if span is None else "population"
            raise ValueError(
                f"{kind} {where!r}: its outgoing projections use rules {names}; "
                f"{first.name!r} defines how the error crosses the {kind}'s "
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

    @property
    def steps_after(self) -> bool:
        """Whether :meth:`after_step` has anything to do (an :class:`~biofa.rules.AfterStep`
        rule, or clamped signs)."""
        clamped = self.circuit.constraint == "clamp"
        return clamped or any(isinstance(g.rule, AfterStep) for g in self.groups.values())

    def after_step(self, step: int, seed: int) -> None:
        """After optimiser step ``step``: clamp signs (``Circuit(constraint="clamp")``), then run
        the :class:`~biofa.rules.AfterStep` rules' hooks."""
        with torch.no_grad():
            if self.circuit.constraint == "clamp":
                for group in self.groups.values():
                    clamp_(group)
                for area in self.areas.values():
                    for gain in getattr(area, "gains", {}).values():
                        gain.clamp_(min=0)
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
            area = self.areas[name]
            if name in self.stage_groups:
                external, within = self.stage_groups[name]
                outs = [(self.groups[k], self.groups[k](_inputs(self.groups[k], acts), None))
                        for k in external]  # fmt: skip
                h = area(outs, [[self.groups[k] for k in keys] for keys in within])
            else:
                pre, bias_added = None, False
                for key in self.group_names[name]:
                    group = self.groups[key]
                    bias = None
                    if area.bias is not None and not bias_added and group.norm is None:
                        bias, bias_added = area.bias, True
                    y = group(_inputs(group, acts), bias)
                    pre = y if pre is None else pre + y
                for source, transform in self.unweighted[name]:
                    y = transform(acts[source])
                    pre = y if pre is None else pre + y
                h = area(pre, bias_added)
            if name in self.hooks:
                h = self.hooks[name](h, bus)
            for key, c0, c1 in self.population_hooks.get(name, ()):
                parts = [h[:, :c0], self.hooks[key](h[:, c0:c1], bus), h[:, c1:]]
                h = torch.cat([t for t in parts if t.shape[1]], dim=1)
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


def _staged(circuit: Circuit, area: str) -> bool:
    """Whether ``area`` computes population by population (:mod:`biofa.nn.staged`)."""
    a = circuit.areas[area]
    own = any(p.nonlinearity is not None or p.bias is not None for p in a.populations)
    return (
        bool(a.interneurons)
        or own
        or any(p.within or p.target_population or p.divisive for p in circuit.incoming(area))
    )


def _inputs(group: ProjectionGroup, acts: dict[str, Tensor]) -> list[Tensor]:
    """A group's inputs: each source area's output, narrowed to the channels the group reads."""
    out = []
    for c in group.spec.columns:
        t = acts[c.area]
        if c.start != 0 or c.stop != t.shape[1]:
            t = t.narrow(1, c.start, c.stop - c.start)
        out.append(t)
    return out


def _reads(group: ProjectionGroup, area: str, span: Span | None) -> bool:
    """Whether ``group`` reads ``area`` (the population ``span`` of it, when given)."""
    return any(
        c.area == area and (span is None or (c.start < span.stop and span.start < c.stop))
        for c in group.spec.columns
    )


def _transform(p: Projection, shapes: dict) -> Any:
    """The transform an unweighted projection adds to its target's summed input."""
    if not isinstance(p.kind, UnweightedKind):
        raise TypeError(
            f"projection {p.name!r}: kind {type(p.kind).__name__} is neither a WeightedKind nor "
            "an UnweightedKind (biofa.circuit.kind)"
        )
    return p.kind.build_transform(shapes[p.source_area].out, shapes[p.target_area].pre)


def _key(name: str) -> str:
    return name.replace("->", "__to__").replace(".", ":").replace("+", "__and__")


def compile(
    circuit: Circuit, *, input_shape: tuple[int, int, int], num_classes: int, seed: int = 0
) -> CompiledCircuit:
    """Build the trainable network for ``circuit`` on data of ``input_shape`` (C, H, W) with
    ``num_classes`` classes; every tensor drawn from ``seed`` (see the module docstring).

    The spiking back-end builds from a compiled (trained) circuit:
    :func:`biofa.spiking.to_brian2`.
    """
    return CompiledCircuit(circuit, input_shape, num_classes, seed)
