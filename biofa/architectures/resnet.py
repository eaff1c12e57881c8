r"""He et al.'s CIFAR ResNets as circuits: ResNet-20/32/44/56/110 (depth ``6n + 2``).

A ``3 x 3`` conv stem of 16 channels (batch norm, ReLU), three stages of ``n`` basic blocks with
16, 32 and 64 channels on 32x32, 16x16 and 8x8 grids (the first block of stages 2 and 3 has
stride 2), global average pooling and a dense readout (He, Zhang, Ren & Sun 2016, Sec. 4.2). In
a circuit a basic block is two areas:

.. math::
    a = \mathrm{ReLU}(\mathrm{BN}(W_1 * x)), \qquad
    \mathrm{out} = \mathrm{ReLU}(\mathrm{BN}(W_2 * a) + S(x)),

the first with area-level batch norm, the second with a conv projection carrying its own batch
norm (``conv(3, batch_norm=True)``) and a shortcut ``S``: ``identity()`` where the shape is kept;
where it changes, **option A** (``shortcut(2)``: subsample and zero-pad the channels, no
parameters -- what He et al. used on CIFAR, and BioTorch's and the PFA code's ``small_resnet``)
or **option B** (``conv(1, stride=2, batch_norm=True)``: a learned projection, which then has a
feedback pathway of its own). With ``rule`` every weighted projection's pathway uses it
(``feedback_everywhere``); a direct rule (``direct_feedback_alignment``) gets a pathway into
every hidden area.

``width`` multiplies every channel count (16, 32, 64); ``ei=True`` splits each area into E and I
populations (a quarter inhibitory) so that Dale's law holds for every weighted projection. The
shortcuts are unweighted: they pass the same neurons' activity on, so they carry no sign (with
``ei=True`` and option A the zero-padding shifts channels, so a source I channel can land on a
target E channel); ``shortcut="B"`` makes every shortcut a sign-constrained projection.
``init`` is the circuit's initialisation convention (``"xavier_uniform"`` for BioTorch/PFA).

He, K., Zhang, X., Ren, S. & Sun, J. (2016), *Deep residual learning for image recognition*,
CVPR (arXiv:1512.03385).
"""

from __future__ import annotations

from typing import Any

from biofa.architectures._populations import populations, scaled
from biofa.circuit import Circuit
from biofa.kinds import conv, dense, identity, shortcut

__all__ = ["SHORTCUTS", "cifar_resnet"]

SHORTCUTS = ("A", "B")
STAGES = ((16, 1), (32, 2), (64, 2))  # (channels, first stride)


def cifar_resnet(
    depth: int = 20,
    *,
    rule: str = "backprop",
    rule_options: dict[str, Any] | None = None,
    shortcut_option: str = "A",
    width: float = 1.0,
    ei: bool = False,
    init: str = "he_normal",
    name: str = "",
) -> Circuit:
    """A CIFAR ResNet of ``depth`` layers (module docstring).

    Parameters
    ----------
    depth
        ``6n + 2``: 20, 32, 44, 56, 110, ... (``n`` basic blocks per stage).
    rule, rule_options
        The rule on every feedback pathway (``"backprop"``: none declared) and its options.
    shortcut_option
        ``"A"`` (parameter-free, zero-padded) or ``"B"`` (1x1 conv projections) where the shape
        changes.
    width, ei, init
        Channel multiplier, E/I populations (Dale's law), the initialisation convention.
    name
        The circuit's name (default ``resnet<depth>``).
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth={depth!r}: a CIFAR ResNet has 6n + 2 layers (20, 32, 44, 56, 110)")
    if shortcut_option not in SHORTCUTS:
        raise ValueError(f"shortcut={shortcut_option!r} is not one of {', '.join(SHORTCUTS)}")
    blocks = (depth - 2) // 6
    c = Circuit(name or f"resnet{depth}", init=init)
    c.input("image")
    stem = scaled(STAGES[0][0], width)
    c.area("stem", *populations(stem, ei), batch_norm=True)
    c.connect("image", "stem", conv(3))
    prev, channels = "stem", stem
    for s, (base, first_stride) in enumerate(STAGES):
        out_channels = scaled(base, width)
        for b in range(blocks):
            stride = first_stride if b == 0 else 1
            a, out = f"s{s + 1}b{b + 1}a", f"s{s + 1}b{b + 1}"
            last = s == len(STAGES) - 1 and b == blocks - 1
            c.area(a, *populations(out_channels, ei), batch_norm=True)
            c.area(out, *populations(out_channels, ei), bias=False,
                   pool="global_avg" if last else None)  # fmt: skip
            c.connect(prev, a, conv(3, stride=stride))
            c.connect(a, out, conv(3, batch_norm=True))
            if stride == 1 and channels == out_channels:
                c.connect(prev, out, identity())
            elif shortcut_option == "A":
                c.connect(prev, out, shortcut(stride))
            else:
                c.connect(prev, out, conv(1, stride=stride, padding=0, batch_norm=True))
            prev, channels = out, out_channels
    c.readout("out")
    c.connect(prev, "out", dense())
    if rule != "backprop":
        c.feedback_everywhere(rule, **dict(rule_options or {}))
    return c
