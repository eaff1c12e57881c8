"""Per-projection blocks of a batched weight: the entries each projection owns, sums over them.

Under population wiring a projection is a block ``W[r0:r1, c0:c1]`` of its group's weight
(``FeedbackContext.blocks``); rules and norm controls that act per projection (the
sign-concordant rules' ``norm`` options, :func:`biofa.nn.norms.hold_weight_norms`) sum over blocks
with one matrix product, so their cost does not grow with the number of projections.
"""

from __future__ import annotations

import torch
from torch import Tensor

from biofa.rules._base import FeedbackContext

__all__ = ["block_matrix", "blocks_of", "entry_sumsq"]


def blocks_of(weight: Tensor, context: FeedbackContext) -> list[tuple[int, int, int, int]] | None:
    """The projections' ``(r0, r1, c0, c1)`` when some covers only some rows, else ``None``."""
    if not context.row_blocks:
        return None
    return [(r0, r1, c0, c1) for _, r0, r1, c0, c1 in context.blocks]


def block_matrix(shape: tuple[int, ...], blocks: list[tuple[int, int, int, int]]) -> Tensor:
    """``S`` of shape ``(out * in, P)``: ``S[i * in + j, p] = 1`` if entry ``(i, j)`` is in block
    ``p`` (the row-and-column form of a column segment matrix)."""
    s = torch.zeros(shape[0], shape[1], len(blocks))
    for p, (r0, r1, c0, c1) in enumerate(blocks):
        s[r0:r1, c0:c1, p] = 1.0
    return s.view(shape[0] * shape[1], len(blocks))


def entry_sumsq(t: Tensor) -> Tensor:
    """Sum of squares over the kernel dims: shape ``(out * in,)``."""
    t = t if t.dtype in (torch.float32, torch.float64) else t.float()
    sq = t.pow(2)
    return (sq.sum(dim=list(range(2, sq.dim()))) if sq.dim() > 2 else sq).reshape(-1)
