r"""Batchwise random-magnitude sign-concordant feedback, brSF (Liao, Leibo & Poggio 2016).

.. math:: B^{(t)} = \kappa\,\operatorname{sign}(W^{(t)}) \circ |R^{(t)}|, \qquad
          R^{(t)}_{ij} \sim N(0, 1) \text{ redrawn after every update of } W,
          \qquad \delta_{in} = B^{(t)\top} \delta_{out} .

Signs follow ``W`` (concordance exactly 1); magnitudes are fresh noise for every mini-batch, so
no fixed magnitude pattern can be learned around. Options ``scale``, ``norm`` and ``concordance``
as for :mod:`biofa.rules.usf`; ``magnitude`` (``"half_normal"``, default, or ``"uniform"``:
``|R| = sqrt(3) u``, ``u ~ U(0, 1)``) as for :mod:`biofa.rules.frsf`.

**When ``R`` is redrawn** (option ``redraw``):

* ``"update"`` (default): whenever ``W`` changes -- ``R`` is a function of the bits of ``W``
  (below).
* ``"forward"``: for every training forward/backward pass, independently of ``W``, as BioTorch
  0.0.16 redraws ``|xavier_uniform_|`` in every ``forward()``: ``R^{(t)}`` is a function of the seed
  and a draw counter (the feedback tensor ``draws``, advanced after every optimiser step, so the
  backward of step ``t+1`` and the metrics recorded after step ``t`` see draw ``t``). BioTorch
  also redraws in its evaluation passes, which change nothing that is learned; the counter does
  not count them. BioTorch's brSF is ``redraw="forward", norm="biotorch", magnitude="uniform"``
  in a circuit declared with ``init="xavier_uniform"``.

**How "redrawn every batch" is made reproducible.** ``R^{(t)}`` is a pure function of a fixed
per-group seed (the feedback tensor ``seed``, drawn from the compile-time generator and saved in
every checkpoint) and of the bits of the current ``W^{(t)}``: a counter-based hash (a ``lowbias32``-
style 32-bit integer hash, evaluated with int64 tensor ops) maps ``(seed, digest(W), i)`` to a
uniform ``u_i`` in (0, 1) and ``|R_i| = sqrt(2) erfinv(u_i)`` (a half-normal draw). Every update
changes ``W``, hence ``R``, exactly as "redrawn after each update of W" asks; gradient accumulation
over micro-batches of one update uses one draw; a resumed run redraws the same ``R`` (it depends
only on the checkpointed ``W`` and ``seed``); metrics see the ``B`` the next backward will use;
and nothing waits for the host (no generator state, no ``.item()``). The same seed and ``W`` give
the same ``u`` on a CPU and a GPU (``erfinv`` may differ in the last bit). An update that leaves
``W`` bit-identical (zero gradient) keeps ``R``. With ``redraw="forward"`` the digest of ``W`` is
replaced by the counter ``draws`` (checkpointed), with the same guarantees.

Liao, Q., Leibo, J. Z. & Poggio, T. (2016), *How important is weight symmetry in
backpropagation?*, AAAI (arXiv:1510.05067).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from biofa.rules._base import AfterStep, Feedback
from biofa.rules._sign_concordant import SQRT3, SignConcordantRule
from biofa.rules.registry import register

_M32 = 0xFFFFFFFF


def mix32(x: Tensor) -> Tensor:
    """A 32-bit integer hash (Wellons' ``lowbias32`` family, constants by TheIronBorn) on int64
    tensors holding values in ``[0, 2**32)``; both constants are below ``2**31``, so no product
    overflows int64."""
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & _M32
    return x ^ (x >> 15)


def words32(t: Tensor) -> Tensor:
    """The bits of ``t`` as non-negative int64 32-bit (or 16-bit) words, flat."""
    flat = t.detach().contiguous().reshape(-1)
    size = flat.element_size()
    if size == 8:
        bits = flat.view(torch.int64)
        return torch.cat([bits & _M32, (bits >> 32) & _M32])
    if size == 4:
        return flat.view(torch.int32).to(torch.int64) & _M32
    if size == 2:
        return flat.view(torch.int16).to(torch.int64) & 0xFFFF
    raise TypeError(f"brsf: cannot hash a weight of dtype {t.dtype}")


def digest(t: Tensor) -> Tensor:
    """A 32-bit digest (0-d int64 tensor) of ``t``'s bits, on ``t``'s device.

    ``mix32`` of ``sum_i (word_i XOR i)`` over the 32-bit words of ``t``: every term is below
    ``2**32`` and integer sums are exact, so the digest does not depend on the device or the
    reduction order (and cannot overflow for fewer than ``2**31`` words). Any change of ``t``
    changes it unless changes cancel exactly; cheap (three passes over ``t``).
    """
    words = words32(t)
    index = torch.arange(words.numel(), device=words.device, dtype=torch.int64)
    total = (words ^ index).sum()
    return mix32((total & _M32) ^ mix32((total >> 32) & _M32))


def uniform_hash(shape: tuple[int, ...], seed: Tensor, key: Tensor) -> Tensor:
    """Uniform float32 samples in (0, 1), a pure function of ``(seed, key, position)``."""
    n = math.prod(shape)
    k1 = mix32(key ^ (seed & _M32))
    k2 = mix32(k1 ^ ((seed >> 32) & _M32))
    index = torch.arange(n, device=key.device, dtype=torch.int64)
    h = mix32(mix32(index ^ k1) ^ k2)
    return ((h >> 9).to(torch.float32) + 0.5) * (1.0 / 2**23)  # exact in float32, in (0, 1)


def half_normal_hash(shape: tuple[int, ...], seed: Tensor, key: Tensor, dtype) -> Tensor:
    """``|N(0, 1)|`` samples, a pure function of ``(seed, key, position)``."""
    u = uniform_hash(shape, seed, key)
    return (math.sqrt(2.0) * torch.erfinv(u)).to(dtype).view(shape)


REDRAWS = ("update", "forward")


@register
class BatchRandomSignConcordant(SignConcordantRule, AfterStep):
    """brSF: sign(W) with random magnitudes redrawn after every update of W (Liao et al. 2016)."""

    name = "brsf"
    defaults = {**SignConcordantRule.defaults, "magnitude": "half_normal", "redraw": "update"}

    @classmethod
    def check_options(cls, options: dict[str, Any], where: str) -> None:
        super().check_options(options, where)
        redraw = options.get("redraw", "update")
        if redraw not in REDRAWS:
            raise ValueError(
                f"{where}: redraw={redraw!r} for rule 'brsf' is not one of "
                f"{', '.join(map(repr, REDRAWS))}"
            )

    def init_magnitudes(self, weight: Tensor, generator: torch.Generator) -> dict[str, Feedback]:
        seed = torch.randint(0, 2**62, (), generator=generator, dtype=torch.int64)
        fb = {"seed": Feedback(seed.to(weight.device))}
        if self.options["redraw"] == "forward":
            fb["draws"] = Feedback(torch.zeros((), dtype=torch.int64, device=weight.device))
        return fb

    def magnitudes(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        key = mix32(fb["draws"] & _M32) if "draws" in fb else digest(weight)
        shape = tuple(weight.shape)
        if self.options["magnitude"] == "uniform":
            return (uniform_hash(shape, fb["seed"], key) * SQRT3).to(weight.dtype).view(shape)
        return half_normal_hash(shape, fb["seed"], key, weight.dtype)

    def after_step(
        self, weight: Tensor, fb: dict[str, Tensor], generator: torch.Generator, step: int
    ) -> None:
        if "draws" in fb:  # redraw="forward": the next backward pass uses a fresh draw
            fb["draws"].add_(1)
