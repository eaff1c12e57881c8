r"""Dale's ANN layers (Cornford et al. 2021) as declarations: E units, local interneurons, and the
paper's initialisation and corrected inhibitory updates.

A DANN layer of ``n_E`` excitatory units ``e`` (the only ones projecting onward) and ``n_I`` local
feedforward interneurons ``i`` (linear, no bias) reads the excitatory units of the layer below:

.. math::
    z_E = W_{EE} x, \qquad z_I = W_{IE} x, \qquad
    z = g \odot \frac{z_E - W_{EI} z_I}{W_{EI} (e^{\alpha} \odot z_I) + \epsilon} + b, \qquad
    h = \mathrm{ReLU}(z)

(linear in the output layer), all of ``W_EE, W_IE, W_EI, g >= 0``. In biofa that is three
projections: ``source -> name.e`` and ``source -> name.i`` (batched into one op) and
``name.i -> name.e`` with ``mode="subtractive+divisive"`` (:mod:`biofa.circuit.wiring`).

Initialisation (the authors' code, linclab/ltlwdp, ``EiDenseWithShunt_MultipleInt_LayerNorm``):
``W_EE, W_IE ~ Exponential`` of mean ``sigma = sqrt(1 / (2 d))`` in the first layer (pixels in
[0, 1]) and ``sqrt(2 pi / (d (2 pi - 1)))`` above it (``d``: the layer's fan-in, ``in * k * k``
for a convolution); ``W_EI = 1 / n_I``, so the subtraction centres ``z``; ``e^alpha =
sqrt((2 pi - 1) / d)``, so the division standardises it; ``g = 1``, ``b = 0``. With one
interneuron (the output layer) ``W_IE`` is the mean row of ``W_EE`` and ``W_EI = 1``.

Corrected updates (their ``cSGD``; ``corrected=True``): the gradients of ``W_IE``, ``W_EI`` and
``alpha`` are divided by ``sqrt(n_E)``, ``d`` and ``sqrt(n_E) d`` (``lr_scale`` /
``shunt_lr_scale`` of the projections). Their code clamps the weights at 0 after each step;
biofa parametrizes them by default (``Circuit(constraint="clamp")`` clamps; ``docs/populations.md``
compares the two).

Cornford, J., Kalajdzievski, D., Leite, M., Lamarquette, A., Kullmann, D. M. & Richards, B. A.
(2021), *Learning to live with Dale's principle: ANNs with separate excitatory and inhibitory
units*, ICLR (OpenReview eU776ZYxEpz).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from biofa.circuit.init import constant, exponential, row_mean
from biofa.circuit.kind import ProjectionKind
from biofa.circuit.populations import E, I

if TYPE_CHECKING:
    from biofa.circuit.graph import Circuit

__all__ = ["dann_area", "dann_readout", "dann_sigma"]

TWO_PI = 2.0 * math.pi


def dann_sigma(fan_in: int, first: bool) -> float:
    """The mean (and standard deviation) of the exponential ``W_EE`` and ``W_IE``."""
    if first:
        return math.sqrt(1.0 / (2.0 * fan_in))
    return math.sqrt(TWO_PI / (fan_in * (TWO_PI - 1.0)))


def interneurons(n: int):
    """``n`` linear interneurons without bias, named ``i``."""
    return I(n, "i", nonlinearity="identity", bias=False)


def _wire(
    c: Circuit,
    source: str,
    name: str,
    kind: ProjectionKind,
    local: ProjectionKind,
    fan_in: int,
    n_e: int,
    n_i: int,
    first: bool,
    corrected: bool,
) -> None:
    sigma = dann_sigma(fan_in, first)
    c.connect(source, f"{name}.e", kind, init=exponential(sigma))
    inhibitory = row_mean(f"{source}->{name}.e") if n_i == 1 else exponential(sigma)
    fix = corrected
    c.connect(source, f"{name}.i", kind, init=inhibitory,
              lr_scale=1.0 / math.sqrt(n_e) if fix else 1.0)  # fmt: skip
    c.connect(f"{name}.i", f"{name}.e", local, mode="subtractive+divisive",
              init=constant(1.0 / n_i), shunt_gain=math.sqrt((TWO_PI - 1.0) / fan_in),
              lr_scale=1.0 / fan_in if fix else 1.0,
              shunt_lr_scale=1.0 / (math.sqrt(n_e) * fan_in) if fix else None)  # fmt: skip


def dann_area(
    c: Circuit,
    name: str,
    source: str,
    kind: ProjectionKind,
    local: ProjectionKind,
    *,
    n_e: int,
    n_i: int,
    fan_in: int,
    first: bool = False,
    corrected: bool = True,
    **area: Any,
) -> None:
    """Declare hidden area ``name`` (``E(n_e, "e")``, ``n_i`` interneurons ``i``) reading
    ``source`` through ``kind`` (``dense()``, ``conv(3)``), its interneurons acting through
    ``local`` (``dense()``, ``conv(1)``); ``fan_in`` is ``d``, ``first`` for the layer on the
    pixels; ``area``: options of :meth:`Circuit.area` (``pool=...``)."""
    c.area(name, E(n_e, "e"), interneurons(n_i), **area)
    _wire(c, source, name, kind, local, fan_in, n_e, n_i, first, corrected)


def dann_readout(
    c: Circuit,
    name: str,
    source: str,
    kind: ProjectionKind,
    local: ProjectionKind,
    *,
    classes: int,
    fan_in: int,
    corrected: bool = True,
) -> None:
    """Declare the readout ``name``: ``classes`` scores ``e`` and one interneuron ``i``."""
    c.readout(name, classes, scores="e", interneurons=[interneurons(1)])
    _wire(c, source, name, kind, local, fan_in, classes, 1, False, corrected)
