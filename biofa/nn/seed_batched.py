r"""Seed-batched execution: ``K`` copies of one compiled circuit run as one computation.

:func:`stack` stacks the copies' parameters and buffers along a new leading (seed) dimension and
makes each copy's own tensors views into the stacks. Under ``torch.func.vmap`` over that
dimension, :class:`biofa.nn.function.ProjectionFunction`'s vmap rule runs ONE seed-batched op per
projection (the kind's :meth:`~biofa.kinds.ProjectionOp.seed_batched` form: a batched matrix
product, a grouped convolution) with the feedback rule's own functions vmapped per seed
(:class:`~biofa.nn.function.PerSeed`). Seed ``k``'s numbers are those of its own unbatched
circuit up to float rounding. Used by the seed-batched stepper of :mod:`biofa.train`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from biofa.nn import CompiledCircuit

__all__ = ["StackedParameters", "stack"]


def stack(models: list[CompiledCircuit]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Stacked parameters (leaves) and buffers of ``models``; each model's own tensors become views
    into them, so the per-seed modules always show the current values."""
    params: dict[str, Tensor] = {}
    for name, p in models[0].named_parameters():
        stacked = torch.stack([dict(m.named_parameters())[name].detach() for m in models])
        params[name] = stacked.requires_grad_(p.requires_grad)
    buffers: dict[str, Tensor] = {}
    for name, _ in models[0].named_buffers():
        buffers[name] = torch.stack([dict(m.named_buffers())[name] for m in models])
    for k, m in enumerate(models):
        for name, p in m.named_parameters():
            p.data = params[name].detach()[k]
        for name, _ in m.named_buffers():
            module_name, _, attr = name.rpartition(".")
            owner = m.get_submodule(module_name) if module_name else m
            owner._buffers[attr] = buffers[name][k]
    return params, buffers


class StackedParameters:
    """What :func:`biofa.train.build_optimizers` reads, pointing at the stacked tensors."""

    def __init__(self, model: CompiledCircuit, params: dict[str, Tensor]):
        names = {id(p): n for n, p in model.named_parameters()}
        self._forward = [params[names[id(p)]] for p in model.forward_parameters()]
        self._feedback = [params[names[id(p)]] for p in model.feedback_parameters()]

    def forward_parameters(self) -> list[Tensor]:
        return self._forward

    def feedback_parameters(self) -> list[Tensor]:
        return self._feedback
