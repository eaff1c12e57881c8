"""Circuits of the papers' architectures, built from declarations only (no torch).

* :func:`~biofa.architectures.resnet.cifar_resnet`: He et al.'s CIFAR ResNets (20, 32, 44, 56,
  110, ...: depth ``6n + 2``), option A or B shortcuts, width multiplier, E/I populations.
* :func:`~biofa.architectures.vgg.vgg`: plain VGG-style conv nets (VGG-11/13/16/19 layouts and
  small ones), the kind Liao et al. and Moskovitz et al. trained.

The spec files ``circuits/resnet.py`` and ``circuits/vgg.py`` expose them to the command line;
``circuits/reproduce/*`` build the papers' tables on them.
"""

from biofa.architectures.resnet import cifar_resnet
from biofa.architectures.vgg import VGG_LAYOUTS, vgg

__all__ = ["VGG_LAYOUTS", "cifar_resnet", "vgg"]
