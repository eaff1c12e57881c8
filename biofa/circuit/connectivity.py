"""Sparse connectivity of a weighted projection: a connection probability ``p`` or a user mask.

``dense(p=0.1)``, ``conv(3, p=0.5)``: each synapse of the projection exists with probability
``p``, drawn once at compile time from the run's seed and the projection's name
(:mod:`biofa.nn.seeds`), so a run is reproducible and two projections never share a draw.
``dense(mask=M)``: the synapses where ``M`` is nonzero (any array-like: a nested list, a numpy
array, a torch tensor). The mask has the projection's ``(target units, source units)`` shape, for a
convolution ``(out, in)`` (every kernel position alike) or the kernel's ``(out, in, k, k)``; a
dense projection reading a flattened spatial source takes ``(out, C)`` (every position of a
channel alike) or ``(out, C*H*W)``. It is checked against the circuit's shapes at compile time.

The mask folds into the weight's parametrization, ``W = M * s|V|`` (:mod:`biofa.nn.constraints`):
masked synapses are zero at every step, whatever the rule, optimiser or learning rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["check_connectivity", "mask_shape"]


def mask_shape(mask: Any) -> tuple[int, ...]:
    """The shape of an array-like (``.shape``, or the lengths of nested sequences)."""
    shape = getattr(mask, "shape", None)
    if shape is not None:
        return tuple(int(n) for n in shape)
    out: list[int] = []
    level = mask
    while isinstance(level, Sequence) and not isinstance(level, str):
        out.append(len(level))
        if not level:
            break
        level = level[0]
    return tuple(out)


def check_connectivity(declared: str, p: Any, mask: Any) -> None:
    """``ValueError`` naming ``declared`` (e.g. ``"dense(p=0)"``) for a bad ``p`` or mask."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 < p <= 1.0:
        raise ValueError(f"{declared}: p={p!r} must be a number in (0, 1] (connection probability)")
    if mask is not None:
        if p != 1.0:
            raise ValueError(f"{declared}: give a connection probability p or a mask, not both")
        if len(mask_shape(mask)) < 2:
            raise ValueError(
                f"{declared}: mask of shape {mask_shape(mask)} must be 2-D (target units x "
                "source units) or the weight's shape"
            )
