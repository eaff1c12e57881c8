"""Training: the :class:`Train` configuration, the one training loop (:func:`fit`), its steppers
(one model, DDP, or many seeds batched), optimisers and schedules, checkpoints."""

from biofa.train.config import Train
from biofa.train.interrupt import Interrupted
from biofa.train.loop import Diverged, Run, fit, resolve_device
from biofa.train.optim import build_optimizers, lr_factor, set_weight_decay
from biofa.train.steppers import batching_refusal

__all__ = [
    "Diverged",
    "Interrupted",
    "Run",
    "Train",
    "batching_refusal",
    "build_optimizers",
    "fit",
    "lr_factor",
    "resolve_device",
    "set_weight_decay",
]
