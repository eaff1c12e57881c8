"""Training: the :class:`Train` configuration and the training loop."""

from biofa.train.config import Train
from biofa.train.loop import Diverged, build_optimizers, fit, lr_factor, resolve_device

__all__ = ["Diverged", "Train", "build_optimizers", "fit", "lr_factor", "resolve_device"]
