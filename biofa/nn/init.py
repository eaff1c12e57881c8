"""Draw one projection's initial weights and connectivity mask (the descriptors of
:mod:`biofa.circuit.init` and :mod:`biofa.circuit.connectivity`).

Every draw comes from a generator seeded by ``(seed, purpose, projection name)``
(:mod:`biofa.nn.seeds`): the weights from ``"weight"``, the mask of a sparse projection from
``"mask"``. A projection's block is therefore the same whether it is batched with others or not,
and whatever the feedback rules are. (Groups of all-to-all default projections keep drawing one
weight from the group's name, so circuits declared before populations could be wired keep their
numbers.)

Magnitudes come from the descriptor; the weight takes its source populations' signs (``s |R|``,
``R`` the draw; ``Units`` columns keep the draw's sign). He-normal draws scale by the synapses a
unit really has: ``N(0, gain^2 / n)`` with ``n = p * fan_in`` for a sparse projection (the mean
count per unit for a user mask), and balance E and I columns as
:func:`biofa.nn.constraints.balanced_init` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from biofa.circuit import Projection
from biofa.circuit.init import Constant, Exponential, HeNormal, RowMean
from biofa.nn.constraints import balanced_init
from biofa.nn.seeds import generator
from biofa.rules import initializers
from biofa.rules._base import he_normal

__all__ = ["connectivity", "draw_block"]


def connectivity(p: Projection, shape: tuple[int, ...], seed: int) -> Tensor | None:
    """The block's 0/1 mask (float32, ``shape``), or ``None`` when every synapse exists."""
    kind = p.kind
    if getattr(kind, "mask", None) is not None:
        m = torch.as_tensor(kind.mask).detach().to("cpu", torch.float32).ne(0).float()
        if m.dim() == 2 and m.shape[1] != shape[1]:  # (out, C) of a flattening dense projection
            m = m.repeat_interleave(shape[1] // m.shape[1], dim=1)
        return m.view(*m.shape, *([1] * (len(shape) - m.dim()))).expand(shape).contiguous()
    prob = getattr(kind, "p", 1.0)
    if prob >= 1.0:
        return None
    gen = generator(seed, "mask", p.name)
    return (torch.rand(shape, generator=gen) < prob).float()


def draw_block(
    p: Projection,
    shape: tuple[int, ...],
    fan: int,
    signs: Tensor,
    relu_target: bool,
    seed: int,
    mask: Tensor | None,
    row_mean_of: Callable[[str], Tensor],
    default: str = "he_normal",
) -> Tensor:
    """``p``'s initial block of ``shape`` (masked), for column ``signs`` broadcast over it.

    ``row_mean_of(name)`` returns the (unsigned, masked) magnitudes another projection of the same
    source starts with (for :class:`~biofa.circuit.init.RowMean`). A projection without its own
    ``init`` follows the circuit's convention ``default`` (``"he_normal"``, ``"xavier_uniform"``,
    ``"kaiming_uniform"``; :mod:`biofa.rules.initializers`), E and I balanced.
    """
    init = p.init or HeNormal()
    gen = generator(seed, "weight", p.name)
    if mask is not None:  # the synapses a unit has: the connected fraction of its fan-in
        fan = max(1.0, fan * float(mask.mean()))
    if p.init is None and default != "he_normal":
        fan_out = p.kind.fan_out(shape)
        w = balanced_init(initializers.draw(default, shape, fan, fan_out, gen), signs)
    elif isinstance(init, HeNormal):
        gain = init.gain or (math.sqrt(2.0) if relu_target else 1.0)
        w = balanced_init(he_normal(shape, fan, gen, gain), signs)
    else:
        w = signed(magnitudes(init, shape, gen, row_mean_of), signs)
    return w if mask is None else w * mask


def magnitudes(init, shape, gen: torch.Generator, row_mean_of) -> Tensor:
    """Non-negative magnitudes of ``shape`` for a non-He descriptor."""
    if isinstance(init, Exponential):
        return torch.empty(shape).exponential_(1.0 / init.scale, generator=gen)
    if isinstance(init, Constant):
        return torch.full(shape, float(init.value))
    if isinstance(init, RowMean):
        return row_mean_of(init.of).abs().mean(dim=0, keepdim=True).expand(shape).clone()
    raise TypeError(f"unknown initialisation {init!r}")


def signed(magnitude: Tensor, signs: Tensor) -> Tensor:
    """``s |m|`` on signed columns, ``m`` on unconstrained ones."""
    s = signs.to(magnitude.dtype)
    return torch.where(s != 0, s * magnitude.abs(), magnitude)
