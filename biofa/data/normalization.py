r"""Per-channel normalisation statistics and the affine map every batch goes through.

A batch is normalised per channel as :math:`\hat x = (x/s - \mu_c)/\sigma_c`, with :math:`s = 255`
for uint8 images and :math:`s = 1` for float images, and :math:`\mu_c, \sigma_c` the mean and
population standard deviation of channel :math:`c` of the training images on the [0, 1] scale.
It is computed as one fused ``addcmul`` with float32 coefficients
:math:`a_c = 1/(s\,\sigma_c)` and :math:`b_c = -\mu_c/\sigma_c` (formed in float64, then rounded).
"""

from __future__ import annotations

import functools

import torch

__all__ = ["channel_stats", "normalize"]


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of images ``(N, C, H, W)`` on the [0, 1] scale.

    uint8: exact, from a 256-bin histogram per channel; float: summed in chunks, in float64.
    """
    if x.dtype == torch.uint8:
        hist = torch.stack(
            [torch.bincount(x[:, c].flatten(), minlength=256) for c in range(x.shape[1])]
        )
        v = torch.arange(256, dtype=torch.float64) / 255
        n = hist.sum(1).double()
        s1, s2 = (hist.double() @ v) / n, (hist.double() @ v.square()) / n
    else:
        chunk = max(1, 2**22 // max(1, x[0].numel()))
        s1 = s2 = torch.zeros(x.shape[1], dtype=torch.float64)
        for i in range(0, len(x), chunk):
            xb = x[i : i + chunk].to("cpu", torch.float64)
            s1, s2 = s1 + xb.sum((0, 2, 3)), s2 + xb.square().sum((0, 2, 3))
        n = x.shape[0] * x.shape[2] * x.shape[3]
        s1, s2 = s1 / n, s2 / n
    std = (s2 - s1.square()).clamp_min(0).sqrt()
    return tuple(s1.tolist()), tuple(std.tolist())


@functools.lru_cache(maxsize=64)
def _affine(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device, uint8: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)`` as float32 ``(1, C, 1, 1)`` tensors on ``device`` (cached: built once)."""
    scale = 255.0 if uint8 else 1.0
    sd = torch.tensor(std, dtype=torch.float64).clamp_min(1e-12)  # a constant channel
    mu = torch.tensor(mean, dtype=torch.float64)
    a, b = 1.0 / (scale * sd), -mu / sd
    return tuple(t.float().view(1, -1, 1, 1).to(device) for t in (a, b))


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Raw images -> float32 ``(x/s - mean)/std`` (module docstring), on ``x``'s device."""
    a, b = _affine(tuple(mean), tuple(std), x.device, x.dtype == torch.uint8)
    return torch.addcmul(b, x.to(torch.float32), a)
