r"""Random draws of forward and feedback weights under a circuit's initialisation convention.

A circuit declares one convention (``Circuit(name, init=...)``, :data:`biofa.circuit.INITS`);
the compiler draws every forward weight with it and the rules draw their random feedback tensors
with it (through :func:`draw_like`), so a circuit reproducing a paper's "Xavier init" has Xavier
forward *and* feedback weights, as BioTorch has. For a weight with fans ``n_in``, ``n_out`` (as
torch counts them: a conv kernel's receptive field in both, :meth:`WeightedKind.fan_out`) and a
gain ``g`` (torch's convention: ``g`` scales the standard deviation):

=====================  ================================================  =======================
``init``               distribution                                      default ``g``
=====================  ================================================  =======================
``"he_normal"``        :math:`N(0, g^2 / n_{in})` (He et al. 2015)       forward: ``sqrt(2)``
                                                                         into a ReLU area, else
                                                                         1; rules: their own
                                                                         (``sqrt(2)``; DFA 1)
``"xavier_uniform"``   :math:`U(\pm g \sqrt{6 / (n_{in} + n_{out})})`    1, as
                                                                         ``xavier_uniform_``
``"kaiming_uniform"``  :math:`U(\pm g \sqrt{3 / n_{in}})`                ``sqrt(1/3)``: bound
                                                                         ``1/sqrt(n_in)``,
                                                                         PyTorch's default
                                                                         ``Linear``/``Conv2d``
=====================  ================================================  =======================

A rule's ``gain`` option is ``None`` by default, meaning the convention's default above; an
explicit value is the ``g`` of whatever convention the circuit uses. ``"he_normal"`` is the
default and draws exactly what biofa always drew.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from biofa.circuit import INITS
from biofa.rules._base import FeedbackContext, he_normal

__all__ = ["INITS", "default_gain", "draw", "draw_like", "init_std"]

SQRT2 = math.sqrt(2.0)
_DEFAULT_GAIN = {"xavier_uniform": 1.0, "kaiming_uniform": math.sqrt(1.0 / 3.0)}


def default_gain(init: str, he_gain: float = SQRT2) -> float:
    """The gain ``init`` uses when none is given (``he_gain`` for He-normal)."""
    return he_gain if init == "he_normal" else _DEFAULT_GAIN[init]


def init_std(
    init: str, fan_in: int, fan_out: int, gain: float | None = None, *, he_gain: float = SQRT2
) -> float:
    """The standard deviation of :func:`draw`'s samples."""
    g = default_gain(init, he_gain) if gain is None else float(gain)
    if init == "xavier_uniform":
        return g * math.sqrt(2.0 / (fan_in + fan_out))
    if init in ("he_normal", "kaiming_uniform"):
        return g / math.sqrt(fan_in)
    raise ValueError(f"init={init!r} is not one of {', '.join(INITS)}")


def draw(
    init: str,
    shape,
    fan_in: int,
    fan_out: int,
    generator: torch.Generator,
    gain: float | None = None,
    *,
    he_gain: float = SQRT2,
    device=None,
    dtype=None,
) -> Tensor:
    """Samples of ``shape`` from ``init`` (module docstring), drawn in float32 on the CPU from
    ``generator``, then moved to ``device``/``dtype``."""
    if init == "he_normal":  # exactly the draw biofa always made
        g = he_gain if gain is None else float(gain)
        return he_normal(shape, fan_in, generator, g, device, dtype)
    std = init_std(init, fan_in, fan_out, gain, he_gain=he_gain)
    u = torch.rand(tuple(shape), generator=generator, dtype=torch.float32) * 2.0 - 1.0
    return (u * (std * math.sqrt(3.0))).to(device=device, dtype=dtype)


def draw_like(
    weight: Tensor,
    generator: torch.Generator,
    gain: float | None,
    context: FeedbackContext,
    *,
    he_gain: float = SQRT2,
) -> Tensor:
    """A random feedback tensor of ``weight``'s shape, device and dtype, drawn the way the
    circuit draws forward weights (its ``init``, this projection group's fans)."""
    return draw(context.init, weight.shape, context.fan_in, context.fan_out or context.fan_in,
                generator, gain, he_gain=he_gain, device=weight.device,
                dtype=weight.dtype)  # fmt: skip
