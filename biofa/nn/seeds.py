"""Seeds derived by name: every tensor of a run is drawn from ``(seed, purpose, name)``.

Forward weights of group ``g`` come from ``(seed, "weight", g)``, its feedback from
``(seed, "feedback", g)``, so the same seed gives the same forward weights whatever the feedback
rules are (rules are compared from identical starting points).
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["derive_seed", "generator"]


def derive_seed(seed: int, *parts: str) -> int:
    """A 63-bit seed derived from ``seed`` and names (stable across runs and platforms)."""
    digest = hashlib.sha256(":".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, *parts: str) -> torch.Generator:
    """A CPU generator seeded with :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, *parts))
