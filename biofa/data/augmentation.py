"""Standard CIFAR augmentation (zero-padded random crop and horizontal flip), on the device.

The draws (crop offsets ``dy, dx`` in ``0..2*padding`` and a flip flag per example) come from a
generator, so a training epoch draws them once, up front, for every position of its permutation
(:meth:`biofa.data.DataSource.train_batches`); the crop and flip of a whole batch is then one
gather on the images' device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["augment_crop_flip", "crop_flip", "draw"]


def draw(
    n: int, padding: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example crop offsets ``dy, dx`` in ``0..2*padding`` and flip flags, on the generator."""
    kw = {"generator": generator, "device": generator.device}
    dy = torch.randint(0, 2 * padding + 1, (n,), **kw)
    dx = torch.randint(0, 2 * padding + 1, (n,), **kw)
    flip = torch.randint(0, 2, (n,), **kw).bool()
    return dy, dx, flip


def crop_flip(x, dy, dx, flip, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding``, crop ``H x W`` at ``(dy, dx)``, mirror where ``flip``; one gather.

    ``out[n, c, i, j] = pad(x)[n, c, dy_n + i, dx_n + (W - 1 - j if flip_n else j)]``.
    """
    n, c, h, w = x.shape
    dy, dx, flip = dy.to(x.device), dx.to(x.device), flip.to(x.device)
    xp = F.pad(x, (padding,) * 4)
    ih, iw = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    rows = dy[:, None] + ih
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - iw, iw)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return xp[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def augment_crop_flip(
    x: torch.Tensor, generator: torch.Generator, padding: int = 4
) -> torch.Tensor:
    """Standard CIFAR augmentation for a whole batch ``(N, C, H, W)`` on its device.

    Zero-pads by ``padding``, crops back to ``H x W`` at a per-example random offset and flips
    each example horizontally with probability 1/2. Works on raw uint8 or float images (zero
    padding = black). Draws come from ``generator`` (any device) via :func:`draw`.
    """
    return crop_flip(x, *draw(len(x), padding, generator), padding=padding)
