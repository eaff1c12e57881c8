r"""Fixed, stratified choices of examples: the digits test split, subsets and validation splits.

:func:`stratified_choice` picks ``n`` of ``N`` labelled examples so that every class keeps its
share. Class :math:`k` with :math:`N_k` members gets :math:`n_k = \lfloor q_k \rfloor` or
:math:`\lfloor q_k \rfloor + 1` of them, :math:`q_k = n N_k / N`, by the largest-remainder
method (the :math:`n - \sum_k \lfloor q_k \rfloor` classes with the largest fractional parts get
one more; ties go to the lower class index), so :math:`\sum_k n_k = n` and
:math:`|n_k - q_k| < 1`. Within a class, the members whose BLAKE2b hash of ``salt`` followed by
their index (4 bytes, little-endian) sorts first are taken. Which examples are chosen therefore
depends only on the labels, ``n`` and ``salt``: never on a run's seed or on a random generator.
"""

from __future__ import annotations

import hashlib
import math

import torch

__all__ = ["index_hash", "stratified_choice"]


def index_hash(i: int, salt: bytes = b"") -> bytes:
    """BLAKE2b (8 bytes) of ``salt`` + ``i`` as 4 little-endian bytes."""
    return hashlib.blake2b(salt + int(i).to_bytes(4, "little"), digest_size=8).digest()


def stratified_choice(labels: torch.Tensor, n: int, salt: bytes = b"") -> torch.Tensor:
    """A boolean mask over ``labels`` (int64, CPU) selecting ``n`` examples (module docstring).

    Requires ``0 <= n <= len(labels)``; the caller words the error for its own parameter.
    """
    labels = labels.cpu()
    total = len(labels)
    if not 0 <= n <= total:
        raise ValueError(f"cannot choose {n} of {total} examples")
    mask = torch.zeros(total, dtype=torch.bool)
    if n == 0:
        return mask
    counts = torch.bincount(labels).tolist()
    quota = [n * c / total for c in counts]
    take = [math.floor(q) for q in quota]
    by_remainder = sorted(range(len(counts)), key=lambda k: (-(quota[k] - take[k]), k))
    for k in by_remainder[: n - sum(take)]:
        take[k] += 1
    for k, n_k in enumerate(take):
        if n_k:
            members = torch.nonzero(labels == k).flatten().tolist()
            mask[sorted(members, key=lambda i: index_hash(i, salt))[:n_k]] = True
    return mask
