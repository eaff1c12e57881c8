r"""Shadow backward passes: what a rule delivers vs what backprop would deliver, at record steps.

At a record step the trainer calls :func:`shadow_metrics` with the step's batch. It runs one extra
forward pass of the *current* weights (after the step's update: the weights
:mod:`biofa.measure.probes`
also measures) and differentiates its loss twice with :func:`torch.autograd.grad`:

1. with the rules as compiled (what training does), and
2. exactly, under the model's :meth:`~biofa.nn.CompiledCircuit.exact_gradients`: every
   projection sends the error back
   through ``W`` itself and direct pathways pass the true error through -- backprop's gradient of
   the same loss, for the same batch, weights and batch-norm statistics.

Nothing of the training state is touched: ``autograd.grad`` never writes ``.grad`` (real
gradients and optimiser state stay as they are), batch norm uses the batch's statistics without
updating its running statistics (``track_running_stats`` is switched off for the pass, in
training mode), and no random generator is drawn from. Both passes see the same batch, the same
weights and the same batch-norm statistics, so for ``backprop`` the two backward passes are
bit-identical and both angles are exactly 0.

Per projection ``p: src -> dst`` (a slice ``W[:, a:b]`` of its group's batched weight):

``error_angle``
    :math:`\theta(\delta^\text{rule}_{src}, \delta^\text{bp}_{src})`: the error arriving at the
    output (the activity, after nonlinearity and pooling) of the projection's **source** area,
    over the whole batch -- the error the feedback pathway ``dst -> src`` (plus any other pathway
    into ``src``) delivers, for a direct rule the error it sends straight to ``src``. Projections
    leaving the input area have none (NaN); projections sharing a source share the value. For a
    projection from a population, the error at that population (at its activity inside its area,
    before pooling, when its area computes population by population).
``update_angle``
    :math:`\theta(\nabla^\text{rule}_{W_p} L, \nabla_{W_p} L)`: the weight gradient the rule
    produces for the slice ``W_p`` (the local product of the delivered error and the input)
    against backprop's gradient of the same slice. Taken with respect to ``W`` itself, not the
    Dale parametrisation's free parameter ``V`` (for a parametrised weight the two differ by a
    per-entry sign, which leaves the angle unchanged).
``feedback_update_norm``
    Only for rules with learned feedback tensors:
    :math:`\lVert g_B\rVert_F`, the Frobenius norm of the pseudo-gradient the rule gives its
    learned feedback tensors for this batch (the update direction before the feedback
    optimiser's learning rate), restricted to the projection's slice when the tensor has ``W``'s
    input dimension, over the whole tensor otherwise. A learned direct pathway into area ``l``
    counts for the projections leaving ``l`` (as ``error_angle``).

Cost: one forward and two backward passes per record step (under 2 % of the training compute at
``record_every=100``); nothing runs between record steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

from biofa.circuit.wiring import output_spans
from biofa.measure.registry import ShadowInputs, computed
from biofa.nn import CompiledCircuit

__all__ = ["Gradients", "frozen_batch_norm", "shadow_backward", "shadow_metrics"]


@contextmanager
def frozen_batch_norm(model: nn.Module) -> Iterator[nn.Module]:
    """Batch norm normalises with the batch's statistics but leaves the running ones alone.

    In training mode a ``_BatchNorm`` with ``track_running_stats=False`` uses batch statistics
    and updates nothing (neither ``running_mean``/``running_var`` nor ``num_batches_tracked``);
    the flag is restored on exit. In eval mode nothing changes.
    """
    changed = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for m in changed:
        m.track_running_stats = False
    try:
        yield model
    finally:
        for m in changed:
            m.track_running_stats = True


@dataclass
class Gradients:
    """What one backward pass delivered (module docstring)."""

    #: area (or population of a staged area, ``"area.pop"``) -> ``dL/dh``, the error arriving at
    #: its output (``None``: none arrived)
    errors: dict[str, Tensor | None]
    #: group key -> ``dL/dW`` of the group's batched weight ``W`` (``None``: none)
    weights: dict[str, Tensor | None]
    #: group key, or ``"hook:<area>"`` -> pseudo-gradients of its learned feedback tensors
    feedback: dict[str, list[Tensor]] = field(default_factory=dict)


def _source_areas(model: CompiledCircuit) -> list[str]:
    """Areas some weighted projection reads, except the input (which receives no error), and the
    populations of staged areas some projection reads."""
    slices = [s for s, _ in model.projection_slices()]
    sources = {s.source for s in slices}
    pops = {f"{s.source}.{s.source_population}" for s in slices if s.source_population != "*"}
    areas = [a for a in model.order[1:] if a in sources and a in model.areas]
    staged = [
        f"{a}.{p}" for a in areas if hasattr(model.areas[a], "taps")
        for p in model.areas[a].taps if f"{a}.{p}" in pops
    ]  # fmt: skip
    return areas + staged


def _module(model: CompiledCircuit, name: str):
    area, _, pop = name.partition(".")
    return model.areas[area].taps[pop] if pop else model.areas[area]


def shadow_backward(
    model: CompiledCircuit,
    x: Tensor,
    y: Tensor,
    *,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    loss_scale: float = 1.0,
) -> tuple[Gradients, Gradients]:
    """One forward of ``model`` on ``(x, y)`` and two ``autograd.grad`` backwards of its loss:
    with the rules, then exactly (``model.exact_gradients()``). Touches no state.

    Returns
    -------
    (rule, exact) : tuple of Gradients
        ``exact.feedback`` is empty.
    """
    areas = _source_areas(model)
    outputs: dict[str, Tensor] = {}

    def keep(name: str):
        def hook(module, inputs, output):
            outputs[name] = output

        return hook

    with ExitStack() as stack:
        stack.enter_context(frozen_batch_norm(model))
        stack.enter_context(parametrize.cached())
        for name in areas:
            handle = _module(model, name).register_forward_hook(keep(name))
            stack.callback(handle.remove)
        # under parametrize.cached() every access returns this same tensor, forward included
        weights = {key: g.weight for key, g in model.groups.items()}
        learned = [
            (key, p)
            for key, g in model.groups.items()
            for p in g.feedback.values()
            if p.requires_grad
        ] + [
            (f"hook:{area}", p)
            for area, h in model.hooks.items()
            for p in h.feedback.values()
            if p.requires_grad
        ]
        with torch.enable_grad():
            with autocast():
                logits = model(x)
            if logits.dtype in (torch.float16, torch.bfloat16):
                logits = logits.float()  # as the training step does
            loss = F.cross_entropy(logits, y)
            if loss_scale != 1.0:
                loss = loss * loss_scale
            names = [a for a in areas if a in outputs and outputs[a].requires_grad]
            wkeys = [k for k, w in weights.items() if w.requires_grad]
            inputs = [outputs[a] for a in names] + [weights[k] for k in wkeys]
            if not inputs:
                return Gradients(dict.fromkeys(areas), dict.fromkeys(weights)), Gradients(
                    dict.fromkeys(areas), dict.fromkeys(weights)
                )
            ranges = (len(names), len(names) + len(wkeys))
            grads = torch.autograd.grad(
                loss, inputs + [p for _, p in learned], allow_unused=True, retain_graph=True
            )
            with model.exact_gradients():
                reference = torch.autograd.grad(loss, inputs, allow_unused=True)

    def unpack(gs: tuple) -> Gradients:
        errors: dict[str, Tensor | None] = dict.fromkeys(areas)
        errors.update(zip(names, gs[: ranges[0]], strict=True))
        wgrads: dict[str, Tensor | None] = dict.fromkeys(weights)
        wgrads.update(zip(wkeys, gs[ranges[0] : ranges[1]], strict=True))
        return Gradients(errors, wgrads)

    rule, exact = unpack(grads), unpack(reference)
    for (key, _), g in zip(learned, grads[ranges[1] :], strict=True):
        if g is not None:
            rule.feedback.setdefault(key, []).append(g)
    return rule, exact


def _fb_slice(g: Tensor, weight_shape: torch.Size, s) -> Tensor:
    """The projection's part of a feedback pseudo-gradient: its block if it has ``W``'s rows and
    columns, its input columns if it has those."""
    if g.dim() >= 2 and g.shape[0] == weight_shape[0] and g.shape[1] == weight_shape[1]:
        return s.block(g)
    return g


def _source_error(model: CompiledCircuit, errors: dict, s) -> Tensor | None:
    """The error at the output of projection slice ``s``'s source (area or population)."""
    if s.source_population == "*":
        return errors.get(s.source)
    name = f"{s.source}.{s.source_population}"
    if name in errors:
        return errors[name]
    error = errors.get(s.source)
    if error is None:
        return None
    span = output_spans(model.circuit, s.source, model.num_classes)[s.source_population]
    return error[:, span.start : span.stop]


def shadow_metrics(
    model: CompiledCircuit, x: Tensor, y: Tensor, **options: Any
) -> dict[str, dict[str, Tensor]]:
    """``{metric: {projection: 0-d tensor}}`` for every registered shadow metric
    (:class:`~biofa.measure.registry.ShadowInputs`: ``error_angle``, ``update_angle`` and, when
    the circuit learns feedback tensors, ``feedback_update_norm``; module docstring), from
    :func:`shadow_backward` of ``model`` on the batch ``(x, y)``.

    ``options`` are :func:`shadow_backward`'s (``autocast``, ``loss_scale``). Angles do not depend
    on the loss scale; the feedback update is divided by it.
    """
    loss_scale = options.get("loss_scale", 1.0)
    rule, exact = shadow_backward(model, x, y, **options)
    metrics = computed(ShadowInputs)
    out: dict[str, dict[str, Tensor]] = {m.name: {} for m in metrics}
    per_area: dict[tuple[str, str], Tensor | None] = {}  # metrics of an area's error alone
    with torch.no_grad():
        for key, group in model.groups.items():
            gr, gb = rule.weights.get(key), exact.weights.get(key)
            for s in group.slices:
                parts = [
                    _fb_slice(g, gr.shape if gr is not None else g.shape, s)
                    for g in rule.feedback.get(key, [])
                ] + rule.feedback.get(f"hook:{s.source}", [])
                update = torch.cat([t.reshape(-1) for t in parts]) if parts else None
                if update is not None and loss_scale != 1.0:
                    update = update / loss_scale
                both = gr is not None and gb is not None
                inputs = ShadowInputs(
                    _source_error(model, rule.errors, s),  # the error at the source's output
                    _source_error(model, exact.errors, s),
                    s.block(gr) if both else None,
                    s.block(gb) if both else None,
                    update,
                )
                source = f"{s.source}.{s.source_population}"
                for m in metrics:
                    if set(m.inputs) <= _AREA_ERRORS:  # shared by projections of one source
                        if (m.name, source) not in per_area:
                            per_area[m.name, source] = m.compute(inputs)
                        value = per_area[m.name, source]
                    else:
                        value = m.compute(inputs)
                    if value is not None:
                        out[m.name][s.projection] = value
    return {name: values for name, values in out.items() if values}


_AREA_ERRORS = {"delivered_error", "reference_error"}
