r"""Shared machinery of the sign-concordant feedback rules (usf, brsf, frsf, usf_flipped).

Every one of them sends the error back through

.. math::
    B = \kappa_p \; \sigma \; F \circ \operatorname{sign}(W) \circ M ,

recomputed from the current ``W`` in every backward pass (the sign follows ``W`` at every step):

* ``M`` -- the magnitudes: all ones (uSF), ``|R|`` with ``R`` drawn once (frSF) or anew for every
  backward pass (brSF); option ``magnitude``: ``"half_normal"`` (default, ``R_ij ~ N(0, 1)``) or
  ``"uniform"`` (``R_ij ~ U(-sqrt(3), sqrt(3))``, so ``kappa |R|`` is BioTorch's
  ``|xavier_uniform_ draw|`` exactly); ``E[M^2] = 1`` for all of them.
* ``F`` -- the sign-mismatch mask (option ``concordance``, Liao et al.'s "sign concordance"
  experiments): ``+1`` except on a random, fixed ``round((1 - c) n_p)`` entries of each projection
  ``p`` (``n_p`` weights), which are ``-1``; the fraction of entries of ``B`` whose sign agrees
  with ``W`` is then exactly ``c`` (up to rounding) at every step. ``sigma = -1`` for
  ``usf_flipped`` (every sign reversed, concordance 0), else ``+1``.
* ``kappa_p`` -- the scale of projection ``p`` (option ``norm``, times option ``scale``):

  - ``"none"``: ``kappa = 1``. Liao, Leibo & Poggio's rules as defined (uSF: ``B = sign(W)``).
  - ``"init"``: ``kappa_p = rms(W_p(0)) = ||W_p(0)||_F / sqrt(n_p)``, the root-mean-square of the
    projection's forward weights *at initialisation*, fixed for the run; so ``||B_p|| = ||W_p(0)||``
    at init (exactly for uSF, in expectation for the random magnitudes). Moskovitz et al.'s
    "Init." control (sign-concordant feedback scaled by the initialisation's measured scale).
  - ``"biotorch"``: the constant BioTorch 0.0.16 multiplies ``sign(W)`` by (Sanfiz & Akrout
    2021; ``layers/fa_constructor``), from the weight's fans as torch counts them (``n_in``,
    ``n_out``: a conv kernel's ``k^2`` in both): ``kappa = sqrt(2 / (n_in + n_out))`` -- the
    standard deviation of Xavier-uniform -- when the circuit is declared with
    ``init="xavier_uniform"``, and ``kappa = 1 / sqrt(3 n_in)`` -- the standard deviation of
    PyTorch's default ``kaiming_uniform_(a=sqrt(5))`` -- for any other ``init`` (BioTorch's
    "else" branch).
  - ``"xiao"``: the fixed scale of Xiao, Chen, Liao & Poggio (2018; willwx/sign-symmetry):
    ``kappa = sqrt(2 / (k^2 out))`` for a convolution (``sqrt(2 / n_out)``, torchvision's
    fan-out He init; any windowed kind) and ``kappa = 1 / sqrt(in)`` for a dense projection.
    It does not depend on the circuit's ``init``. (Xiao et al. do *not* match ``"init"``: theirs
    is a formula of the shape, not the measured rms of ``W(0)``.)
  - ``"sn"``: ``kappa_p = ||W_p||_F / ||F\circ sign(W_p) \circ M_p||_F`` recomputed at every
    step, so ``||B_p||_F = ||W_p||_F`` always: Moskovitz et al.'s "SN" read as "sign-concordant
    feedback normalised to the forward weights' norm".

  ``kappa`` is defined **per projection** ``p``, not per batched group: a group concatenates several
  projections into one area along ``W``'s input dimension
  (:class:`biofa.nn.compiler.ProjectionGroup`)
  and batching must not change the maths, so each projection's slice ``W[:, start:stop]`` is
  normalised on its own (``W_p`` means that slice; for a conv kernel all of its entries). Under
  population wiring a projection is a block ``W[r0:r1, c0:c1]`` (``FeedbackContext.blocks``), and
  ``W_p`` is that block; masked synapses are zero in ``W``, hence in ``sign(W)`` and ``B``.
  ``"biotorch"`` and ``"xiao"`` use the fans of the group's weight, the weight the compiler
  draws (and BioTorch's one layer).

Rule state lives in fixed (non-learned) feedback tensors, so ``state_dict`` checkpoints it and DDP
broadcasts it: ``kappa`` (``"init"``; one value per input column of ``W``), ``segments``
(``"sn"``; the 0/1 matrix saying which projection each input column belongs to), ``flip``
(``concordance < 1``; int8 ``F``), ``magnitude`` (frSF), ``seed`` and ``draws`` (brSF, int64).
The rule instance keeps no state of its own.

Liao, Q., Leibo, J. Z. & Poggio, T. (2016), *How important is weight symmetry in
backpropagation?*, AAAI (arXiv:1510.05067). Moskovitz, T. H., Litwin-Kumar, A. & Abbott, L. F.
(2018), *Feedback alignment in deep convolutional networks*, arXiv:1812.06488.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from biofa.rules._base import Feedback, FeedbackContext, FeedbackRule
from biofa.rules.blocks import block_matrix, blocks_of, entry_sumsq

NORMS = ("none", "init", "sn", "biotorch", "xiao")
MAGNITUDES = ("half_normal", "uniform")
SQRT3 = math.sqrt(3.0)


def column_shape(weight: Tensor) -> tuple[int, ...]:
    """``(1, in)`` for a dense weight, ``(1, in, 1, 1)`` for a conv kernel."""
    return (1, weight.shape[1], *([1] * (weight.dim() - 2)))


def column_sumsq(t: Tensor) -> Tensor:
    """Sum of squares over every dim but the input one: shape ``(in,)``."""
    dims = [0, *range(2, t.dim())]
    return t.pow(2).sum(dim=dims)


def slices_of(weight: Tensor, context: FeedbackContext) -> list[tuple[int, int]]:
    """The projections' ``(start, stop)`` along the input dim."""
    if not context.slices:
        return [(0, weight.shape[1])]
    return [(start, stop) for _, start, stop in context.slices]


def segment_matrix(slices: list[tuple[int, int]]) -> Tensor:
    """``S`` of shape ``(in, num_projections)``: ``S[j, p] = 1`` if input column ``j`` is in ``p``.

    Per-projection sums are ``v @ S`` and per-column values ``S @ k``: no host sync, any device.
    """
    s = torch.zeros(slices[-1][1], len(slices))
    for p, (start, stop) in enumerate(slices):
        s[start:stop, p] = 1.0
    return s


def _acc(t: Tensor) -> Tensor:
    """``t`` in a dtype fit for sums of squares (float32 at least)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def projection_sumsq(t: Tensor, segments: Tensor) -> Tensor:
    """``||t_p||_F^2`` for every projection ``p`` (``segments`` from :func:`segment_matrix`)."""
    t = _acc(t)
    return column_sumsq(t) @ segments.to(t.dtype)


class SignConcordantRule(FeedbackRule):
    """Base of the sign-concordant rules (abstract); subclasses give ``magnitudes`` (and
    ``sigma``)."""

    defaults: ClassVar[dict[str, Any]] = {"scale": 1.0, "norm": "none", "concordance": 1.0}
    #: +1, or -1 for a rule whose every feedback sign is reversed
    sigma: ClassVar[float] = 1.0

    @classmethod
    def check_options(cls, options: dict[str, Any], where: str) -> None:
        super().check_options(options, where)
        norm = options.get("norm", cls.defaults.get("norm", "none"))
        if norm not in NORMS:
            raise ValueError(
                f"{where}: norm={norm!r} for rule {cls.name!r} is not one of "
                f"{', '.join(map(repr, NORMS))}"
            )
        scale = options.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ValueError(
                f"{where}: scale={scale!r} for rule {cls.name!r} must be a positive number"
            )
        magnitude = options.get("magnitude", cls.defaults.get("magnitude", "half_normal"))
        if magnitude not in MAGNITUDES:
            raise ValueError(
                f"{where}: magnitude={magnitude!r} for rule {cls.name!r} is not one of "
                f"{', '.join(map(repr, MAGNITUDES))}"
            )
        if "concordance" in cls.defaults:
            c = options.get("concordance", 1.0)
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.0 <= c <= 1.0:
                raise ValueError(
                    f"{where}: concordance={c!r} for rule {cls.name!r} must be a "
                    "number in [0, 1] (the fraction of feedback signs that agree "
                    "with W)"
                )

    # -- what subclasses provide ---------------------------------------------------------------
    def init_magnitudes(self, weight: Tensor, generator: torch.Generator) -> dict[str, Feedback]:
        """Fixed tensors the magnitudes need (none for uSF)."""
        return {}

    @abc.abstractmethod
    def magnitudes(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor | None:
        """``M`` for the current ``W`` (``None``: all ones)."""

    # -- the contract --------------------------------------------------------------------------
    def init_feedback(
        self, weight: Tensor, generator: torch.Generator, context: FeedbackContext
    ) -> dict[str, Feedback]:
        slices = slices_of(weight, context)
        blocks = blocks_of(weight, context)
        fb = self.init_magnitudes(weight, generator)
        norm = self.options["norm"]
        if norm == "init" and blocks is not None:
            kappa = torch.zeros(weight.shape[:2], dtype=torch.float64)
            w = weight.detach().double()
            for r0, r1, c0, c1 in blocks:
                part = w[r0:r1, c0:c1]
                kappa[r0:r1, c0:c1] = torch.sqrt(part.pow(2).sum() / part.numel())
            fb["kappa"] = Feedback(kappa.to(weight.dtype).to(weight.device))
        elif norm == "sn" and blocks is not None:
            s = block_matrix(tuple(weight.shape), blocks)
            fb["block_segments"] = Feedback(s.to(weight.device, weight.dtype))
        elif norm == "init":
            sumsq = column_sumsq(weight.double())
            kappa = torch.empty(weight.shape[1], dtype=torch.float64)
            for start, stop in slices:
                n = weight[:, start:stop].numel()
                kappa[start:stop] = torch.sqrt(sumsq[start:stop].sum() / n)
            fb["kappa"] = Feedback(kappa.to(weight.dtype).to(weight.device))
        elif norm in ("biotorch", "xiao"):
            value = fixed_scale(norm, weight, context)
            kappa = torch.full((weight.shape[1],), value, dtype=torch.float64)
            fb["kappa"] = Feedback(kappa.to(weight.dtype).to(weight.device))
        elif norm == "sn":
            fb["segments"] = Feedback(segment_matrix(slices).to(weight.device, weight.dtype))
        c = float(self.options.get("concordance", 1.0))
        if c < 1.0:
            flip = torch.ones(weight.shape, dtype=torch.int8)
            rows = weight.shape[0]
            for r0, r1, start, stop in blocks or [(0, rows, a, b) for a, b in slices]:
                part = flip[r0:r1, start:stop]
                n = part.numel()
                k = int(round((1.0 - c) * n))
                chosen = torch.randperm(n, generator=generator)[:k]
                # row-major positions of the slice (dims: out, in-slice, kh, kw)
                view = torch.ones(n, dtype=torch.int8)
                view[chosen] = -1
                flip[r0:r1, start:stop] = view.view(part.shape)
            fb["flip"] = Feedback(flip.to(weight.device))
        return fb

    def effective_feedback(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        b = torch.sign(weight)
        m = self.magnitudes(weight, fb)
        if m is not None:
            b = b * m.to(b.dtype)
        if "flip" in fb:
            b = b * fb["flip"].to(b.dtype)
        factor = self.options["scale"] * self.sigma
        norm = self.options["norm"]
        if norm == "init" and fb["kappa"].dim() == 2:  # per block of population wiring
            kappa = fb["kappa"].to(b.dtype) * factor
            b = b * kappa.view(*kappa.shape, *([1] * (weight.dim() - 2)))
        elif norm in ("init", "biotorch", "xiao"):
            b = b * (fb["kappa"].to(b.dtype) * factor).view(column_shape(weight))
        elif norm == "sn" and "block_segments" in fb:
            segments = fb["block_segments"]
            w_sq = entry_sumsq(weight)
            w_sq = w_sq @ segments.to(w_sq.dtype)
            b_sq = entry_sumsq(b) @ segments.to(w_sq.dtype)
            kappa = torch.sqrt(w_sq / b_sq.clamp_min(torch.finfo(b_sq.dtype).tiny))
            per_entry = segments.to(kappa.dtype) @ (kappa * factor)
            b = b * per_entry.to(b.dtype).view(*weight.shape[:2], *([1] * (weight.dim() - 2)))
        elif norm == "sn":
            segments = fb["segments"]
            w_sq, b_sq = projection_sumsq(weight, segments), projection_sumsq(b, segments)
            kappa = torch.sqrt(w_sq / b_sq.clamp_min(torch.finfo(b_sq.dtype).tiny))
            per_column = segments.to(kappa.dtype) @ (kappa * factor)
            b = b * per_column.to(b.dtype).view(column_shape(weight))
        elif factor != 1.0:
            b = b * factor
        return b


def fixed_scale(norm: str, weight: Tensor, context: FeedbackContext) -> float:
    """``kappa`` of ``norm="biotorch"`` or ``"xiao"`` (module docstring) for a group's weight."""
    fan_in = context.fan_in or math.prod(weight.shape[1:])
    fan_out = context.fan_out or weight.shape[0] * (fan_in // weight.shape[1])
    if norm == "biotorch":
        if context.init == "xavier_uniform":
            return math.sqrt(2.0 / (fan_in + fan_out))
        return 1.0 / math.sqrt(3.0 * fan_in)
    if weight.dim() > 2:  # a convolution (or another windowed kind): sqrt(2 / (k^2 out))
        return math.sqrt(2.0 / fan_out)
    return 1.0 / math.sqrt(weight.shape[1])


def half_normal(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """``|R|``, ``R_ij ~ N(0, 1)`` (float32, on the CPU)."""
    return torch.randn(shape, generator=generator, dtype=torch.float32).abs()


def uniform_magnitude(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """``|R|``, ``R_ij ~ U(-sqrt(3), sqrt(3))`` (``E[R^2] = 1``; float32, on the CPU)."""
    return torch.rand(shape, generator=generator, dtype=torch.float32) * SQRT3
