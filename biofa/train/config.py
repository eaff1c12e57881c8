"""The :class:`Train` configuration: everything about *how* a circuit is trained.

A spec file exports ``train = Train(...)``; ``--set key=value`` on the command line replaces a
field (type-checked against the annotations below by :mod:`biofa.cli.spec`). Its defaults train the
embedded scikit-learn digits on a CPU in well under a minute.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

OPTIMIZERS = ("sgd", "adam", "adamw", "manhattan")
SCHEDULES = ("none", "cosine", "step")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Train:
    """How to train a circuit.

    Parameters
    ----------
    data
        A registered data set (``biofa.data.available()``: ``"digits"`` embedded, no download;
        ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"svhn"``; and any registered with
        :func:`biofa.data.register_dataset`), or a path to an ImageFolder directory or ``.zip``
        (``train/<class>/*``, ``test/<class>/*``).
    data_root
        Passed to the data set's loader: where torchvision data sets live or are downloaded to
        (default ``$BIOFA_DATA`` or ``~/.cache/biofa/data``).
    augment
        Standard CIFAR augmentation: random crop with 4-pixel zero padding and horizontal flip.
    train_subset, test_subset
        Train on a fixed, class-stratified subset of this many training examples, evaluate on one
        of this many test examples (0: all; :mod:`biofa.train.datasets`). The same examples for
        every run and seed.
    validation
        Hold out this many training examples (stratified, fixed): the periodic evaluations
        (``eval_every``) report ``validation_accuracy`` on them and the test set is evaluated
        once, after the last step (0: no validation split; every evaluation is on the test set).
    stream
        Read an ImageFolder ``data`` path from disk batch by batch (DataLoader workers, pinned
        memory) instead of decoding it into memory: for sets larger than RAM
        (:mod:`biofa.data.streaming`). Same batches as the in-memory path.
    epochs, batch_size
        Passes over the training set; examples per optimiser step.
    max_steps
        Stop after this many optimiser steps (0: no limit). Handy for smoke tests.
    optimizer, lr, momentum, weight_decay, nesterov
        Forward-weight optimiser: ``"sgd"`` (with ``momentum`` in [0, 1)), ``"adam"``
        (``momentum`` is beta1; L2 weight decay), ``"adamw"`` (Adam with decoupled weight decay) or
        ``"manhattan"`` (Batch Manhattan, Liao et al. 2015: ``w -= lr * sign(g)``; see
        :class:`biofa.train.optim.BatchManhattan`).
    hold_weight_norms
        "Const." of Moskovitz et al. 2018: every projection's forward-weight norm is held at its
        initial value (a parametrization, :func:`biofa.nn.norms.hold_weight_norms`).
    normalize_grads
        Divide each projection's weight gradient by its norm before the step
        (:func:`biofa.nn.norms.normalize_gradients`).
    feedback_optimizer, feedback_lr, feedback_momentum, feedback_weight_decay
        Optional separate settings for learned feedback tensors; empty/negative means "same as the
        forward optimiser".
    schedule, milestones, gamma
        Learning-rate schedule: ``"none"``, ``"cosine"`` (to zero over all steps) or ``"step"``
        (multiply by ``gamma`` at each epoch in ``milestones``).
    weight_decay_milestones, weight_decay_gamma
        Weight-decay schedule of every optimiser: multiply its decay by ``weight_decay_gamma`` at
        each epoch in ``weight_decay_milestones`` (e.g. PFA's 5e-3 in the first epoch, then 1e-4:
        ``weight_decay=5e-3, weight_decay_milestones=(1,), weight_decay_gamma=0.02``).
    precision
        ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast; fp16 uses a gradient scaler).
    device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    seed
        The one seed every generator is derived from (weights, feedback, data order, augmentation).
    record_every, eval_every
        Record metrics every this many steps; evaluate test accuracy every this many steps
        (0: at the end of every epoch). The last step is always recorded and evaluated.
    checkpoint_every
        Write a checkpoint every this many steps (0: only when SIGINT/SIGTERM stops the run).
        ``--resume`` continues from it; with 0 it is removed when the run completes.
    diverge_loss
        A run whose mean training loss over a record window (``record_every`` steps) exceeds this
        while its training accuracy in that window is within 1.5x chance is stopped as diverged,
        like one whose loss is NaN/inf: its file's status is ``"diverged: ..."``, not
        ``"complete"`` (cross-entropy at chance is ``ln C``, 2.3 for 10 classes; only logits of
        order 1e4 reach the default; a net that still learns can have a huge loss from a few
        wildly wrong answers, and is not stopped). 0 turns the check off.
    compile
        Wrap the compiled circuit in ``torch.compile`` (GPU fast path).
    """

    data: str = "digits"
    data_root: str = ""
    augment: bool = False
    train_subset: int = 0
    test_subset: int = 0
    validation: int = 0
    stream: bool = False
    epochs: int = 10
    batch_size: int = 32
    max_steps: int = 0
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    feedback_optimizer: str = ""
    feedback_lr: float = -1.0
    feedback_momentum: float = -1.0
    feedback_weight_decay: float = -1.0
    schedule: str = "none"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    hold_weight_norms: bool = False
    normalize_grads: bool = False
    weight_decay_milestones: tuple[int, ...] = ()
    weight_decay_gamma: float = 1.0
    precision: str = "fp32"
    device: str = "auto"
    seed: int = 0
    record_every: int = 50
    eval_every: int = 0
    checkpoint_every: int = 0
    diverge_loss: float = 1e4
    compile: bool = False

    def __post_init__(self) -> None:
        _check_types(self)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.feedback_optimizer:
            _choice("feedback_optimizer", self.feedback_optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("device", self.device, DEVICES)
        for name in ("epochs", "batch_size", "record_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Train.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("max_steps", "eval_every", "checkpoint_every", "train_subset", "test_subset",
                     "validation"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"Train.{name} must be >= 0, got {getattr(self, name)!r}")
        for name in _FLOATS:
            if not math.isfinite(getattr(self, name)):
                raise ValueError(
                    f"Train.{name} must be a finite number, got {getattr(self, name)!r}"
                )
        _range("lr", self.lr, "a positive number", self.lr > 0)
        _range("momentum", self.momentum, "in [0, 1)", 0 <= self.momentum < 1)
        _range("weight_decay", self.weight_decay, ">= 0", self.weight_decay >= 0)
        _range("gamma", self.gamma, "positive", self.gamma > 0)
        _range("weight_decay_gamma", self.weight_decay_gamma, ">= 0", self.weight_decay_gamma >= 0)
        same = " or -1 (the forward optimiser's)"
        fb_lr, fb_mom, fb_wd = self.feedback_lr, self.feedback_momentum, self.feedback_weight_decay
        _range("feedback_lr", fb_lr, "positive" + same, fb_lr > 0 or fb_lr == -1)
        _range("feedback_momentum", fb_mom, "in [0, 1)" + same, 0 <= fb_mom < 1 or fb_mom == -1)
        _range("feedback_weight_decay", fb_wd, ">= 0" + same, fb_wd >= 0 or fb_wd == -1)
        if not self.diverge_loss >= 0:
            raise ValueError(f"Train.diverge_loss must be >= 0, got {self.diverge_loss!r}")
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(
            self, "weight_decay_milestones", tuple(int(m) for m in self.weight_decay_milestones)
        )
        for name in ("milestones", "weight_decay_milestones"):
            value = getattr(self, name)
            if any(m < 0 for m in value) or list(value) != sorted(value):
                raise ValueError(f"Train.{name}={value!r} must be epochs >= 0 in increasing order")

    def replace(self, **changes) -> Train:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @staticmethod
    def field_names() -> list[str]:
        return [f.name for f in dataclasses.fields(Train)]


_FLOATS = tuple(
    f.name for f in dataclasses.fields(Train) if f.type in ("float", float)
)  # every float field


def _check_types(train: Train) -> None:
    """Every field has its annotated type (an int where a float is expected is converted)."""
    for f in dataclasses.fields(train):
        value, tp = getattr(train, f.name), str(f.type)
        if tp == "float" and isinstance(value, numbers.Real) and not isinstance(value, bool):
            object.__setattr__(train, f.name, float(value))
            continue
        ok = {
            "int": isinstance(value, numbers.Integral) and not isinstance(value, bool),
            "float": False,  # a real number was converted above
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
            "tuple[int, ...]": isinstance(value, (tuple, list))
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value),
        }.get(tp, True)
        if not ok:
            raise TypeError(f"Train.{f.name}={value!r}: expected {tp}, got {type(value).__name__}")
        if tp == "int":
            object.__setattr__(train, f.name, int(value))


def _range(field: str, value: float, allowed: str, ok: bool) -> None:
    if not ok:
        raise ValueError(f"Train.{field}={value!r} must be {allowed}")


def _choice(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"Train.{field}={value!r} is not one of {', '.join(allowed)}")
