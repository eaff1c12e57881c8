r"""Batchwise random-magnitude sign-concordant feedback, brSF (Liao, Leibo & Poggio 2016).

.. math:: B^{(t)} = \kappa\,\operatorname{sign}(W^{(t)}) \circ |R^{(t)}|, \qquad
          R^{(t)}_{ij} \sim N(0, 1) \text{ redrawn after every update of } W,
          \qquad \delta_{in} = B^{(t)\top} \delta_{out} .

Signs follow ``W`` (concordance exactly 1); magnitudes are fresh noise for every mini-batch, so
no fixed magnitude pattern can be learned around. Options ``scale``, ``norm`` and ``concordance``
as for :mod:`biofa.rules.usf`.

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
``W`` bit-identical (zero gradient) keeps ``R``.

Liao, Q., Leibo, J. Z. & Poggio, T. (2016), *How important is weight symmetry in
backpropagation?*, AAAI (arXiv:1510.05067).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from biofa.rules._base import Feedback
from biofa.rules._sign_concordant import SignConcordantRule
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


def half_normal_hash(shape: tuple[int, ...], seed: Tensor, key: Tensor, dtype) -> Tensor:
    """``|N(0, 1)|`` samples, a pure function of ``(seed, key, position)``."""
    n = math.prod(shape)
    k1 = mix32(key ^ (seed & _M32))
    k2 = mix32(k1 ^ ((seed >> 32) & _M32))
    index = torch.arange(n, device=key.device, dtype=torch.int64)
    h = mix32(mix32(index ^ k1) ^ k2)
    u = ((h >> 9).to(torch.float32) + 0.5) * (1.0 / 2**23)  # exact in float32, in (0, 1)
    return (math.sqrt(2.0) * torch.erfinv(u)).to(dtype).view(shape)


@register
class BatchRandomSignConcordant(SignConcordantRule):
    """brSF: sign(W) with random magnitudes redrawn after every update of W (Liao et al. 2016)."""

    name = "brsf"

    def init_magnitudes(self, weight: Tensor, generator: torch.Generator) -> dict[str, Feedback]:
        seed = torch.randint(0, 2**62, (), generator=generator, dtype=torch.int64)
        return {"seed": Feedback(seed.to(weight.device))}

    def magnitudes(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        return half_normal_hash(tuple(weight.shape), fb["seed"], digest(weight), weight.dtype)
