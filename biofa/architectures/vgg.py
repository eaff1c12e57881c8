"""Plain (non-residual) VGG-style conv nets as circuits.

Layouts are lists of conv areas' channel counts with ``"M"`` for 2x2 max pooling after the area
before it (Simonyan & Zisserman 2015's A/B/D/E configurations as ``vgg11``/``vgg13``/``vgg16``/
``vgg19``, and small nets ``vgg_s``/``vgg_xs`` of the size Liao et al. and Moskovitz et al. trained
on CIFAR-10). Every conv is ``3 x 3`` "same", each area optionally batch-normalised, then
``hidden`` dense areas and a dense readout reading the last grid flattened. ``width`` multiplies
every channel count, ``ei=True`` splits each area into E and I populations (a quarter
inhibitory), ``init`` is the initialisation convention, and ``rule`` (with ``rule_options``) is
declared on every feedback pathway.
"""

from __future__ import annotations

from typing import Any

from biofa.architectures._populations import populations, scaled
from biofa.circuit import Circuit
from biofa.kinds import conv, dense

__all__ = ["VGG_LAYOUTS", "vgg"]

M = "M"
VGG_LAYOUTS: dict[str, tuple] = {
    "vgg_xs": (32, M, 64, M, 128, M),
    "vgg_s": (64, 64, M, 128, 128, M, 256, 256, M),
    "vgg11": (64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M),
    "vgg13": (64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M),
    "vgg16": (64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M),
    "vgg19": (64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M,
              512, 512, 512, 512, M),
}  # fmt: skip


def vgg(
    layout: str = "vgg11",
    *,
    rule: str = "backprop",
    rule_options: dict[str, Any] | None = None,
    width: float = 1.0,
    batch_norm: bool = True,
    hidden: tuple[int, ...] = (),
    ei: bool = False,
    init: str = "he_normal",
    name: str = "",
) -> Circuit:
    """A VGG-style circuit (module docstring); ``layout`` is a key of :data:`VGG_LAYOUTS`."""
    if layout not in VGG_LAYOUTS:
        raise ValueError(f"layout={layout!r} is not one of {', '.join(VGG_LAYOUTS)}")
    spec = VGG_LAYOUTS[layout]
    c = Circuit(name or layout, init=init)
    c.input("image")
    prev, k = "image", 0
    for i, item in enumerate(spec):
        if item == M:
            continue
        k += 1
        pool = "max" if i + 1 < len(spec) and spec[i + 1] == M else None
        area = f"conv{k}"
        c.area(area, *populations(scaled(item, width), ei), batch_norm=batch_norm, pool=pool)
        c.connect(prev, area, conv(3))
        prev = area
    for j, units in enumerate(hidden):
        area = f"fc{j + 1}"
        c.area(area, *populations(scaled(units, width), ei), batch_norm=batch_norm)
        c.connect(prev, area, dense(flatten=j == 0))
        prev = area
    c.readout("out")
    c.connect(prev, "out", dense(flatten=not hidden))
    if rule != "backprop":
        c.feedback_everywhere(rule, **dict(rule_options or {}))
    return c
