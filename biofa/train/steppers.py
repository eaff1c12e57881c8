"""How the training loop takes one optimisation step: a single model (also under DDP), or many
seeds of one circuit as one batched computation.

A :class:`Stepper` owns the models of ``K >= 1`` runs that share a circuit and a
:class:`~biofa.train.config.Train` (they differ only in seed), their optimisers and the
gradient scaler. The loop (:func:`biofa.train.fit`) asks it for batches, a step, an evaluation and
its checkpoint state; everything per run comes back with a leading run dimension of size ``K``,
so the loop is the same for one run and for many.

* :class:`SingleStepper`: one compiled circuit, optionally wrapped in ``DistributedDataParallel``
  (``torchrun``; :mod:`biofa.train.distributed`) and ``torch.compile``.
* :class:`SeedBatchedStepper`: ``K`` compiled circuits whose parameters and buffers are stacked
  (:mod:`biofa.nn.seed_batched`), one step for all of them with ``torch.func.vmap``:

  .. math::
      \\ell = \\sum_{k=1}^{K} \\mathrm{CE}\\big(f(x_k; \\theta_k), y_k\\big), \\qquad
      \\nabla_{\\theta_k} \\ell = \\nabla_{\\theta_k} \\mathrm{CE}_k ,

  so every seed follows the trajectory its own run would (up to the float rounding of batched
  kernels): its own weights, feedback, data order, augmentation and batch-norm statistics. The
  per-seed modules in ``models`` are views into the stacks, for the probes and the shadow pass.

What the seed-batched stepper cannot do is refused in one place, :func:`batching_refusal`.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Iterator, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, vmap

from biofa import rules
from biofa.circuit import Circuit
from biofa.data import DataSource
from biofa.nn import CompiledCircuit, compile
from biofa.nn.norms import hold_weight_norms, normalize_gradients
from biofa.nn.seed_batched import StackedParameters, stack
from biofa.train import checkpoint, distributed
from biofa.train.config import Train
from biofa.train.optim import build_optimizers

__all__ = ["SeedBatchedStepper", "SingleStepper", "Stepper", "autocast", "batching_refusal"]


def autocast(train: Train, device: torch.device):
    """The autocast context of ``train.precision`` on ``device`` (a no-op for fp32)."""
    if train.precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if train.precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _model(circuit: Circuit, train: Train, data: DataSource, seed: int, device) -> CompiledCircuit:
    model = compile(
        circuit, input_shape=data.input_shape, num_classes=data.num_classes, seed=seed
    ).to(device)
    if train.hold_weight_norms:
        hold_weight_norms(model)
    return model


class Stepper(abc.ABC):
    """One optimisation step for ``K`` runs (module docstring)."""

    #: the runs' compiled circuits (per-seed views for the batched stepper)
    models: list[CompiledCircuit]
    optimizers: list[torch.optim.Optimizer]
    #: examples per optimiser step over all processes (the data's batch)
    global_batch: int
    #: drop the last incomplete batch of an epoch (DDP shards must be equal)
    drop_last: bool = False

    def __init__(self, train: Train, data: DataSource, device: torch.device):
        self.train, self.data, self.device = train, data, device
        self.scaler = torch.amp.GradScaler(device.type, enabled=train.precision == "fp16")

    @abc.abstractmethod
    def batches(self, epoch: int, start_batch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The step inputs of ``epoch`` from batch ``start_batch`` on."""

    @abc.abstractmethod
    def step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, int]:
        """Forward, backward and optimiser step; returns per run the (detached) loss ``(K,)``, the
        number of correct predictions ``(K,)`` and the examples per run."""

    @abc.abstractmethod
    def run_batch(self, x: Tensor, y: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Run ``k``'s part of a step's inputs (what its shadow pass sees)."""

    @abc.abstractmethod
    def evaluate(self, data: DataSource, batch_size: int) -> Tensor:
        """Accuracy ``(K,)`` on ``data``'s test batches."""

    @abc.abstractmethod
    def run_state(self, k: int) -> dict:
        """Run ``k``'s model, optimiser and scaler state (the checkpoint format of one run)."""

    @abc.abstractmethod
    def load_run_states(self, states: Sequence[dict]) -> None:
        """Restore every run from its :meth:`run_state` (one per run, in order)."""

    def after_step(self, step: int, seeds: Sequence[int]) -> None:
        """The rules' :class:`~biofa.rules.AfterStep` hooks and sign clamping of every run."""
        if self.models[0].steps_after:
            for model, seed in zip(self.models, seeds, strict=True):
                model.after_step(step, seed)


class SingleStepper(Stepper):
    """One model, optionally data-parallel (``ddp``) and ``torch.compile``-d."""

    def __init__(self, circuit: Circuit, train: Train, data: DataSource, device, ddp=None):
        super().__init__(train, data, device)
        self.model = _model(circuit, train, data, train.seed, device)
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.models = [self.model]
        step_fn = self.model if ddp is None else distributed.wrap(self.model, ddp)
        self.step_fn = torch.compile(step_fn) if train.compile else step_fn
        self.optimizers = build_optimizers(self.model, train)
        self.ddp = ddp
        self.global_batch = train.batch_size * (ddp.world_size if ddp else 1)  # a shard per rank
        self.drop_last = ddp is not None

    def batches(self, epoch: int, start_batch: int) -> Iterator[tuple[Tensor, Tensor]]:
        device = self.device
        for x, y in self.data.train_batches(
            self.global_batch, seed=self.train.seed, epoch=epoch, augment=self.train.augment,
            start_batch=start_batch, drop_last=self.drop_last,
        ):  # fmt: skip
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if self.ddp is not None:
                x, y = distributed.shard(x, y, self.ddp)
            if device.type == "cuda" and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y

    def step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, int]:
        with autocast(self.train, self.device):
            logits = self.step_fn(x)
            loss = F.cross_entropy(logits.float(), y)
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.train.normalize_grads:
            for o in self.optimizers:
                self.scaler.unscale_(o)
            normalize_gradients(self.model)
        for o in self.optimizers:
            self.scaler.step(o)
        self.scaler.update()
        hits = (logits.detach().argmax(1) == y).sum().double()
        return loss.detach().reshape(1), hits.reshape(1), len(y)

    def run_batch(self, x: Tensor, y: Tensor, k: int) -> tuple[Tensor, Tensor]:
        return x, y

    def run_state(self, k: int) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "scaler": self.scaler.state_dict(),
        }

    def load_run_states(self, states: Sequence[dict]) -> None:
        (state,) = states
        self.model.load_state_dict(state["model"])
        for o, s in zip(self.optimizers, state["optimizers"], strict=True):
            o.load_state_dict(s)
        self.scaler.load_state_dict(state["scaler"])

    def evaluate(self, data: DataSource, batch_size: int) -> Tensor:
        model, device = self.model, self.device
        was_training = model.training
        model.eval()
        correct = torch.zeros((), device=device, dtype=torch.long)
        with torch.no_grad(), autocast(self.train, device):
            for x, y in data.test_batches(batch_size):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                correct += (model(x).argmax(1) == y).sum()
        model.train(was_training)
        return (correct.double() / data.n_test).reshape(1)


def batching_refusal(circuit: Circuit, train: Train) -> str | None:
    """``None`` if :class:`SeedBatchedStepper` can train this circuit and configuration, else the
    reason (the one place where seed-batched training refuses a ``Train`` field or a rule)."""
    if train.precision == "fp16":
        return "precision='fp16' (one gradient scaler would couple the seeds; use bf16 or fp32)"
    if train.compile:
        return "Train.compile=True"
    if train.stream:
        return "Train.stream=True (each seed would read its own batches from disk)"
    if train.normalize_grads:
        return "Train.normalize_grads=True (per-projection norms of the stacked gradients)"
    if distributed.from_env()[1] > 1:
        return "torchrun with several processes (batched seeds train in one process)"
    for rule in rules.used_by(circuit):
        if issubclass(rules.get(rule), rules.AreaRule):
            return (
                f"rule {rule!r} acts on areas (direct delivery or its own nonlinearity crossing: "
                "the error travels outside autograd's graph, which vmap cannot carry)"
            )
    return None


class SeedBatchedStepper(Stepper):
    """``K`` seeds of one circuit as one vmapped computation (module docstring)."""

    def __init__(
        self, circuit: Circuit, train: Train, data: DataSource, device, seeds: Sequence[int]
    ):
        super().__init__(train, data, device)
        why = batching_refusal(circuit, train)
        if why is not None:
            raise ValueError(f"cannot batch seeds of circuit {circuit.name!r}: {why}")
        self.seeds = list(seeds)
        self.models = [_model(circuit, train, data, s, device) for s in self.seeds]
        self.base = copy.deepcopy(self.models[0])  # the module functional_call runs
        self.params, self.buffers = stack(self.models)
        self.optimizers = build_optimizers(StackedParameters(self.models[0], self.params), train)
        self.global_batch = train.batch_size

        def loss_and_logits(p, b, x, y):
            logits = functional_call(self.base, (p, b), (x,))
            return F.cross_entropy(logits.float(), y), logits

        self._step = vmap(loss_and_logits)
        self._eval = vmap(lambda p, b, x: functional_call(self.base, (p, b), (x,)),
                          in_dims=(0, 0, None))  # fmt: skip
        self.base.train()

    def batches(self, epoch: int, start_batch: int) -> Iterator[tuple[Tensor, Tensor]]:
        streams = [
            self.data.train_batches(self.train.batch_size, seed=s, epoch=epoch,
                                    augment=self.train.augment, start_batch=start_batch)
            for s in self.seeds
        ]  # fmt: skip
        for batch in zip(*streams):
            x = torch.stack([b[0] for b in batch]).to(self.device, non_blocking=True)
            y = torch.stack([b[1] for b in batch]).to(self.device, non_blocking=True)
            yield x, y

    def step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, int]:
        with autocast(self.train, self.device):
            losses, logits = self._step(self.params, self.buffers, x, y)
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)
        losses.sum().backward()
        for o in self.optimizers:
            o.step()
        hits = (logits.detach().argmax(-1) == y).sum(-1).double()
        return losses.detach(), hits, y.shape[1]

    def run_batch(self, x: Tensor, y: Tensor, k: int) -> tuple[Tensor, Tensor]:
        return x[k], y[k]

    def run_state(self, k: int) -> dict:
        model = {name: t.clone() for name, t in self.models[k].state_dict().items()}  # not views
        return {
            "model": model,
            "optimizers": [checkpoint.run_optimizer_state(o, k) for o in self.optimizers],
            "scaler": self.scaler.state_dict(),
        }

    def load_run_states(self, states: Sequence[dict]) -> None:
        for model, state in zip(self.models, states, strict=True):
            model.load_state_dict(state["model"])  # copies into the views: the stacks change
        for i, o in enumerate(self.optimizers):
            parts = [s["optimizers"][i] for s in states]
            o.load_state_dict(checkpoint.merge_optimizer_states(o, parts))

    def evaluate(self, data: DataSource, batch_size: int) -> Tensor:
        self.base.eval()
        hits = torch.zeros(len(self.seeds), device=self.device, dtype=torch.long)
        with torch.no_grad(), autocast(self.train, self.device):
            for x, y in data.test_batches(batch_size):
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                hits += (self._eval(self.params, self.buffers, x).argmax(-1) == y).sum(-1)
        self.base.train()
        return hits.double() / data.n_test
