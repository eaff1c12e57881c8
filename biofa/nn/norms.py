r"""Training-side normalisation controls of Moskovitz, Litwin-Kumar & Abbott (2018).

The feedback-side controls ("Init.", "SN") are options of the sign-concordant rules
(``feedback(..., rule="usf", norm="init" | "sn")``, see :mod:`biofa.rules._sign_concordant`).
The two here act on the forward pathway of a whole :class:`~biofa.nn.compiler.CompiledCircuit`:

* :func:`hold_weight_norms` -- "Const.": every projection's forward weight keeps the Frobenius norm
  it has when this is called (right after compiling: its initial norm),

  .. math:: W_p = \lVert W_p(0)\rVert_F \, \frac{U_p}{\lVert U_p\rVert_F},

  as a parametrization (DESIGN §3: constraints are parametrizations, never clamping in forward).
  ``U`` is whatever the weight was before, so it composes with Dale's law: the chain is
  ``V -> s|V| (DaleSign) -> rescale (FixedNorm)``, and a positive rescaling keeps every sign.
  BioTorch's ``constrain_weights`` option (credited to Moskovitz et al.) instead rescales ``W``
  in place before each forward; the forward weights are the same, but here the gradient also
  passes through the rescaling (the component along ``U_p`` is removed, as in weight
  normalisation with a fixed gain), so the optimiser never fights the constraint.
* :func:`normalize_gradients` -- the reading of "SN" as *gradient* normalisation: after the
  backward and before the optimiser step, each projection's weight gradient is divided by its
  Frobenius norm, :math:`g_p \leftarrow g_p / \lVert g_p\rVert_F` (every other forward parameter,
  e.g. a bias, by its own), so every projection moves by the learning rate whatever the scale of
  the error that reached it. (We could not confirm in the
  paper whether SN normalises the feedback matrix or the gradients; the rule option ``norm="sn"``
  implements the first reading, this function the second.)

``p`` is each *projection*, not each batched group: a group concatenates projections into one
area along the weight's input dimension (:class:`~biofa.nn.compiler.ProjectionGroup`), and batching
must not change the maths, so norms are taken over each projection's slice ``W[:, start:stop]``
(under population wiring its block ``W[r0:r1, c0:c1]``, :mod:`biofa.rules.blocks`).

Moskovitz, T. H., Litwin-Kumar, A. & Abbott, L. F. (2018), *Feedback alignment in deep
convolutional networks*, arXiv:1812.06488 (FA-uSF Const.: 51.2% top-1 on ImageNet).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from biofa.rules.blocks import block_matrix, entry_sumsq

__all__ = ["FixedNorm", "hold_weight_norms", "normalize_gradients", "projection_norms"]


def _segments(slices, width: int) -> Tensor:
    """``(in, P)`` 0/1 matrix: which projection each input column belongs to."""
    s = torch.zeros(width, len(slices))
    for p, sl in enumerate(slices):
        s[sl.start : sl.stop, p] = 1.0
    return s


def _column_sumsq(t: Tensor) -> Tensor:
    t = t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t.pow(2).sum(dim=[0, *range(2, t.dim())])


def _column_shape(t: Tensor) -> tuple[int, ...]:
    return (1, t.shape[1], *([1] * (t.dim() - 2)))


def projection_norms(weight: Tensor, segments: Tensor) -> Tensor:
    """``||W_p||_F`` for every projection ``p`` of a group (``segments``: ``(in, P)`` 0/1)."""
    sq = _column_sumsq(weight)
    return torch.sqrt(sq @ segments.to(sq.dtype))


class FixedNorm(nn.Module):
    r"""``W_p = target_p U_p / ||U_p||_F`` for every projection ``p`` (module docstring).

    ``target`` is a persistent buffer (checkpointed); ``segments`` is structural.
    """

    def __init__(self, weight: Tensor, slices) -> None:
        super().__init__()
        rows = weight.shape[0]
        self.blocks = any(s.row_start != 0 or s.row_stop not in (-1, rows) for s in slices)
        if self.blocks:
            stops = [rows if s.row_stop == -1 else s.row_stop for s in slices]
            spec = [(s.row_start, r1, s.start, s.stop) for s, r1 in zip(slices, stops, strict=True)]
            segments = block_matrix(tuple(weight.shape), spec).to(weight.device, weight.dtype)
        else:
            segments = _segments(slices, weight.shape[1]).to(weight.device, weight.dtype)
        self.register_buffer("segments", segments, persistent=False)
        self.register_buffer("target", self._norms(weight.detach()).to(weight.dtype))

    def _norms(self, u: Tensor) -> Tensor:
        if not self.blocks:
            return projection_norms(u, self.segments)
        sq = entry_sumsq(u)
        return torch.sqrt(sq @ self.segments.to(sq.dtype))

    def forward(self, u: Tensor) -> Tensor:
        norms = self._norms(u)
        factor = self.target.to(norms.dtype) / norms.clamp_min(torch.finfo(norms.dtype).tiny)
        per_column = self.segments.to(factor.dtype) @ factor
        if self.blocks:
            return u * per_column.to(u.dtype).view(*u.shape[:2], *([1] * (u.dim() - 2)))
        return u * per_column.to(u.dtype).view(_column_shape(u))


def hold_weight_norms(model: nn.Module) -> None:
    """Hold every projection's forward-weight norm at its present value ("Const.").

    Call it once, right after :func:`biofa.nn.compiler.compile` (before building optimisers and
    before
    loading a checkpoint, whose state then includes the targets). Composes with the Dale
    parametrization of :mod:`biofa.nn.constraints` (appended after it). Raises ``ValueError`` if
    called twice on the same model.
    """
    for name, group in model.groups.items():
        if parametrize.is_parametrized(group, "weight") and any(
            isinstance(m, FixedNorm) for m in group.parametrizations.weight
        ):
            raise ValueError(f"hold_weight_norms: group {name!r} already holds its weight norms")
        with torch.no_grad():
            constraint = FixedNorm(group.weight.detach(), group.slices)
        parametrize.register_parametrization(group, "weight", constraint)


def _weight_leaf(group: nn.Module) -> Tensor:
    """The tensor the optimiser updates for a group's weight (its parametrization's original)."""
    if parametrize.is_parametrized(group, "weight"):
        return group.parametrizations.weight.original
    return group.weight


def normalize_gradients(model: nn.Module, eps: float = 1e-12) -> None:
    r"""Divide every forward gradient by its Frobenius norm, in place.

    Each projection's weight gradient is normalised on its own,
    :math:`g_p \leftarrow g_p / \max(\lVert g_p\rVert_F, \epsilon)`, on the tensor the optimiser
    updates (``V`` under a parametrization: Dale's law and :func:`hold_weight_norms` act column-wise
    within a projection, so the slices are the same); every other forward parameter (an area's bias,
    batch-norm scale and shift) is normalised as one tensor. Feedback tensors are left alone (a
    learned feedback pathway has its own optimiser). Call it after ``backward()`` and before
    ``optimizer.step()``; with an fp16 ``GradScaler`` call ``scaler.unscale_(optimizer)`` first.
    """
    done: set[int] = set()
    for group in model.groups.values():
        leaf = _weight_leaf(group)
        done.add(id(leaf))
        if leaf.grad is None:
            continue
        for sl in group.slices:
            part = sl.block(leaf.grad)
            part.div_(torch.linalg.vector_norm(part).clamp_min(eps))
    for p in model.forward_parameters():
        if id(p) not in done and p.grad is not None:
            p.grad.div_(torch.linalg.vector_norm(p.grad).clamp_min(eps))
