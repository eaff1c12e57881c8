"""Compile a :class:`~biofa.circuit.Circuit` into a :class:`CompiledCircuit` (an ``nn.Module``).

Batching: projections into one area that share an op signature (op kind, kernel, stride, padding),
a feedback rule with its options, and whether they send an error back, form ONE
:class:`ProjectionGroup` whose weight is the in-channel concatenation of theirs. Populations are
channel ranges of their area, so a projection between E/I areas is one weight too, with a
per-input-channel sign (:mod:`biofa.nn.constraints`). A deep E/I CNN therefore launches the kernels
of a plain CNN of the same size.

Determinism: every tensor is drawn from a generator seeded by ``(seed, purpose, name)`` --
forward weights of group ``g`` from ``(seed, "weight", g)``, its feedback from
``(seed, "feedback", g)`` -- so the same seed gives the same forward weights whatever the
feedback rules are (rules are compared from identical starting points).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biofa import rules as rule_registry
from biofa.circuit import Area, Circuit, Projection
from biofa.circuit.projections import Conv, Dense, Identity
from biofa.circuit.validation import AreaShape, infer_shapes
from biofa.nn.constraints import balanced_init, constrain_signs, input_signs
from biofa.nn.ops import (
    CaptureOutputError,
    Conv2dOp,
    CrossNonlinearity,
    DeliverDirectError,
    ErrorSlot,
    LinearOp,
    project,
)
from biofa.rules._base import FeedbackContext, FeedbackRule, he_normal, init_feedback, overrides

# "sign": torch.sign, whose derivative is 0 almost everywhere (autograd returns zeros), so only
# rules that cross it without a derivative (``FeedbackRule.cross_nonlinearity``, e.g. EKDAA) train
# through it.
ACTIVATIONS = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "sign": torch.sign,
    "identity": None,
}


def derive_seed(seed: int, *parts: str) -> int:
    """A 63-bit seed derived from ``seed`` and names (stable across runs and platforms)."""
    digest = hashlib.sha256(":".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, *parts: str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *parts))


@dataclass(frozen=True)
class Slice:
    """Where one projection's weights sit in its group's input dimension."""

    projection: str
    source: str
    target: str
    op: str
    start: int
    stop: int


class ProjectionGroup(nn.Module):
    """Projections into one area batched into one conv/linear weight (module docstring)."""

    def __init__(
        self,
        name,
        projections,
        circuit: Circuit,
        shapes,
        rule: FeedbackRule,
        send_error: bool,
        seed: int,
    ):
        super().__init__()
        self.name = name
        self.sources = [p.source for p in projections]
        kind = projections[0].kind
        target = circuit.areas[projections[0].target]
        out_channels = shapes[target.name].pre[0]
        self.flatten = isinstance(kind, Dense)
        signs, slices, start = [], [], 0
        for p in projections:
            src_area, src_shape = circuit.areas[p.source], shapes[p.source].out
            channel_signs = _channel_signs(src_area, src_shape)
            repeat = math.prod(src_shape[1:]) if self.flatten else 1
            width = len(channel_signs) * repeat
            signs += [s for s in channel_signs for _ in range(repeat)]
            slices.append(Slice(p.name, p.source, p.target, p.op, start, start + width))
            start += width
        self.slices = slices
        if isinstance(kind, Conv):
            self.op = Conv2dOp(kind.stride, kind.pad)
            shape = (out_channels, start, kind.kernel, kind.kernel)
        else:
            self.op = LinearOp()
            shape = (out_channels, start)
        gain = math.sqrt(2.0) if target.nonlinearity == "relu" else 1.0
        fan = math.prod(shape[1:])
        w = he_normal(shape, fan, generator(seed, "weight", name), gain)
        sign_tensor = input_signs(signs, len(shape))
        self.weight = nn.Parameter(balanced_init(w, sign_tensor))
        constrain_signs(self, "weight", sign_tensor)
        self.rule = rule
        self.send_error = send_error
        out_signs = target.signs if len(target.signs) == out_channels else [0] * out_channels
        context = FeedbackContext(
            name,
            target.name,
            tuple(self.sources),
            tuple(out_signs),
            tuple(signs),
            tuple((s.projection, s.start, s.stop) for s in slices),
        )
        with torch.no_grad():
            init = init_feedback(
                rule, self.weight.detach(), generator(seed, "feedback", name), context
            )
        self.feedback = nn.ParameterDict(
            {
                k: nn.Parameter(f.tensor.detach().clone(), requires_grad=f.learned)
                for k, f in init.items()
            }
        )
        self.norm = nn.BatchNorm2d(out_channels) if kind.batch_norm else None

    def forward(self, inputs: list[Tensor], bias: Tensor | None) -> Tensor:
        if self.flatten:
            inputs = [x.flatten(1) for x in inputs]
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
        feedback = {k: v for k, v in self.feedback.items()}
        y = project(x, self.weight, bias, self.op, self.rule, feedback, self.send_error)
        return y if self.norm is None else self.norm(y)

    def effective_feedback(self) -> Tensor:
        """The tensor used in place of the weight on the way back, now."""
        with torch.no_grad():
            fb = {k: v for k, v in self.feedback.items()}
            return self.rule.effective_feedback(self.weight, fb)


class AreaModule(nn.Module):
    """An area's own computation on its summed input: bias, batch norm, nonlinearity, pooling."""

    def __init__(self, area: Area, shape: AreaShape):
        super().__init__()
        self.area = area
        channels = shape.pre[0]
        self.bias = nn.Parameter(torch.zeros(channels)) if area.bias else None
        self.norm = None
        if area.batch_norm:
            self.norm = (
                nn.BatchNorm2d(channels) if len(shape.pre) == 3 else nn.BatchNorm1d(channels)
            )
        self.activation = ACTIVATIONS[area.nonlinearity]

    def forward(
        self, pre: Tensor, bias_added: bool, crossing: FeedbackRule | None = None
    ) -> Tensor:
        if self.bias is not None and not bias_added:
            pre = pre + self.bias.view(1, -1, *([1] * (pre.dim() - 2)))
        h = pre if self.norm is None else self.norm(pre)
        if crossing is not None:
            h = CrossNonlinearity.apply(h, self.activation, crossing)
        elif self.activation is not None:
            h = self.activation(h)
        pool, k = self.area.pool, self.area.pool_size
        if pool == "max":
            h = F.max_pool2d(h, k)
        elif pool == "avg":
            h = F.avg_pool2d(h, k)
        elif pool == "global_avg":
            h = h.mean(dim=(2, 3))
        return h


class DirectPathway(nn.Module):
    """The fixed/learned tensors a direct rule uses to reach one area."""

    def __init__(self, name: str, rule, area_shape, num_classes: int, seed: int):
        super().__init__()
        self.rule = rule
        init = rule.init_feedback(tuple(area_shape), num_classes, generator(seed, "feedback", name))
        self.feedback = nn.ParameterDict(
            {k: nn.Parameter(f.tensor.clone(), requires_grad=f.learned) for k, f in init.items()}
        )


class CompiledCircuit(nn.Module):
    """A circuit as a trainable ``nn.Module``: ``forward(x) -> logits``."""

    def __init__(
        self, circuit: Circuit, input_shape: tuple[int, int, int], num_classes: int, seed: int = 0
    ):
        super().__init__()
        circuit.validate()
        self.circuit = circuit
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.shapes = infer_shapes(circuit, self.input_shape, num_classes)
        self.order = circuit.topological_order()
        pathways = circuit.resolved_pathways()
        direct = {pw.lower: pw for pw in pathways if rule_registry.get(pw.rule).scope == "direct"}
        layerwise = {
            (pw.lower, pw.upper): pw
            for pw in pathways
            if rule_registry.get(pw.rule).scope != "direct"
        }
        self.areas = nn.ModuleDict()
        self.groups = nn.ModuleDict()
        self.direct = nn.ModuleDict()
        self.group_names: dict[str, list[str]] = {}
        self.identities: dict[str, list[str]] = {}
        self.rules_by_projection: dict[str, str] = {}
        for name in self.order:
            area = circuit.areas[name]
            if area.role == "input":
                continue
            self.areas[name] = AreaModule(area, self.shapes[name])
            self.identities[name] = [
                p.source for p in circuit.incoming(name) if isinstance(p.kind, Identity)
            ]
            self.group_names[name] = []
            for key, members in _group(circuit.incoming(name), layerwise, direct).items():
                gname = "+".join(p.name for p in members)
                rule_name, options = key[1], dict(key[2])
                rule = rule_registry.create(rule_name, **options)
                self.groups[_key(gname)] = ProjectionGroup(
                    gname, members, circuit, self.shapes, rule, send_error=not key[3], seed=seed
                )
                self.group_names[name].append(_key(gname))
                for p in members:
                    self.rules_by_projection[p.name] = rule_name
        for lower, pw in direct.items():
            rule = rule_registry.create(pw.rule, **pw.options)
            self.direct[lower] = DirectPathway(
                pw.name, rule, self.shapes[lower].out, num_classes, seed
            )
            for p in circuit.projections:
                if p.target == lower and not isinstance(p.kind, Identity):
                    self.rules_by_projection.setdefault(p.name, pw.rule)
        self.readout = circuit.readout_area.name
        self.outgoing = {
            a: [k for k, g in self.groups.items() if a in g.sources] for a in self.areas
        }
        for name in self.areas:
            self._crossing(name, check=True)

    def _crossing(self, area: str, check: bool = False) -> FeedbackRule | None:
        """The rule that defines how the error crosses ``area``'s nonlinearity (or ``None``).

        Looked up from the outgoing groups' *current* rules, so swapping rules (shadow passes)
        swaps it too. All outgoing groups must agree (checked at compile time).
        """
        rules = [self.groups[k].rule for k in self.outgoing.get(area, ())]
        crossing = [r for r in rules if overrides(r, "cross_nonlinearity")]
        if (
            check
            and crossing
            and (
                len(crossing) < len(rules)
                or any(
                    (type(r), r.options) != (type(crossing[0]), crossing[0].options) for r in rules
                )
            )
        ):
            names = sorted({r.name for r in rules})
            raise ValueError(
                f"area {area!r}: its outgoing projections use rules {names}; "
                f"{crossing[0].name!r} defines how the error crosses the area's "
                "nonlinearity, so every projection leaving it must use that rule "
                "with the same options"
            )
        return crossing[0] if crossing and overrides(rules[0], "cross_nonlinearity") else None

    def after_step(self, step: int, seed: int) -> None:
        """Run the rules' ``after_step`` hooks (optimiser step ``step``; see the rule contract)."""
        with torch.no_grad():
            for group in self.groups.values():
                if overrides(group.rule, "after_step"):
                    device = group.weight.device
                    gen = torch.Generator(device=device).manual_seed(
                        derive_seed(seed, "after_step", group.name, str(step))
                    )
                    fb = {k: v for k, v in group.feedback.items()}
                    group.rule.after_step(group.weight.detach(), fb, gen, step)

    def forward(self, x: Tensor) -> Tensor:
        slot = ErrorSlot() if len(self.direct) else None
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
            for source in self.identities[name]:
                pre = acts[source] if pre is None else pre + acts[source]
            h = area(pre, bias_added, self._crossing(name))
            if name in self.direct:
                pathway = self.direct[name]
                fb = {k: v for k, v in pathway.feedback.items()}
                h = DeliverDirectError.apply(h, slot, pathway.rule, tuple(fb), *fb.values())
            acts[name] = h
        logits = acts[self.readout]
        return logits if slot is None else CaptureOutputError.apply(logits, slot)

    # -- views for metrics --------------------------------------------------------------------
    def projection_slices(self) -> list[tuple[Slice, ProjectionGroup]]:
        """Every weighted projection with the group it is batched into."""
        return [(s, g) for g in self.groups.values() for s in g.slices]

    def feedback_parameters(self) -> list[nn.Parameter]:
        params = [p for g in self.groups.values() for p in g.feedback.values()]
        params += [p for d in self.direct.values() for p in d.feedback.values()]
        return params

    def forward_parameters(self) -> list[nn.Parameter]:
        fb = {id(p) for p in self.feedback_parameters()}
        return [p for p in self.parameters() if id(p) not in fb]


def _channel_signs(area: Area, shape: tuple[int, ...]) -> list[int]:
    if area.role == "input":
        return [area.populations[0].sign] * shape[0]
    return area.signs


def _group(incoming: list[Projection], layerwise, direct) -> dict[tuple, list[Projection]]:
    groups: dict[tuple, list[Projection]] = {}
    for p in incoming:
        if isinstance(p.kind, Identity):
            continue
        pw = layerwise.get((p.source, p.target))
        rule = pw.rule if pw else "backprop"
        options = tuple(sorted(pw.options.items())) if pw else ()
        tapped = p.source in direct
        unique = p.name if p.kind.batch_norm else ""
        key = (p.kind.signature(), rule, options, tapped, unique)
        groups.setdefault(key, []).append(p)
    return groups


def _key(name: str) -> str:
    return name.replace("->", "__to__").replace(".", "_").replace("+", "__and__")


def compile(
    circuit: Circuit,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    seed: int = 0,
    backend: str = "torch",
    **spiking,
):
    """Build the network for ``circuit`` on data of ``input_shape`` with ``num_classes`` classes.

    ``backend="torch"`` returns a trainable :class:`CompiledCircuit`; ``backend="brian2"`` a
    :class:`biofa.spiking.SpikingNetwork` (small dense circuits; ``spiking`` options go to
    :func:`biofa.spiking.to_brian2`, e.g. ``data=`` for calibration images).
    """
    if backend == "brian2":
        from biofa.spiking import to_brian2

        return to_brian2(
            circuit, input_shape=input_shape, num_classes=num_classes, seed=seed, **spiking
        )
    if backend != "torch":
        raise ValueError(f"backend={backend!r} is not 'torch' or 'brian2'")
    if spiking:
        raise TypeError(f"compile(): options {sorted(spiking)} apply to backend='brian2' only")
    return CompiledCircuit(circuit, input_shape, num_classes, seed)
