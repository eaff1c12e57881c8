"""The training loop: compile, optimise, record, checkpoint.

:func:`fit` is one run: the circuit compiled on the data's shape, forward weights (and learned
feedback tensors, with their own optimiser settings when given) trained by cross-entropy, metrics
recorded every ``record_every`` steps into a :class:`~biofa.measure.record.Recorder`, written as one
netCDF file. Between record steps nothing waits for the device: running sums stay on it and the
NaN guard is a device-side "first bad step" (on a CPU the loss is checked every step).

Determinism: the seed derives every generator (weights and feedback by name in
:mod:`biofa.nn.compiler`, data order and augmentation by ``(seed, epoch, batch)`` in
:mod:`biofa.data`),
so CPU runs are bit-reproducible and a resumed run continues the same trajectory.
"""

from __future__ import annotations

import logging
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from biofa.circuit import Circuit
from biofa.data import DataSource, load
from biofa.measure.probes import projection_metrics
from biofa.measure.record import Recorder, run_recorder
from biofa.measure.shadow import shadow_metrics
from biofa.nn import CompiledCircuit, compile
from biofa.nn.norms import hold_weight_norms, normalize_gradients
from biofa.nn.seeds import derive_seed
from biofa.train import distributed
from biofa.train.config import Train
from biofa.train.optim import BatchManhattan

__all__ = ["Diverged", "Train", "fit", "build_optimizers", "resolve_device"]

log = logging.getLogger(__name__)


class Diverged(RuntimeError):
    """The loss became NaN or infinite; what was recorded before is in the output file."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "Train.device='cuda' but no CUDA device is available (use 'auto' or 'cpu')"
        )
    return torch.device(name)


def _optimizer(kind: str, params, lr: float, momentum: float, weight_decay: float, nesterov: bool):
    if not params:
        return None
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
    if kind == "manhattan":
        return BatchManhattan(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if kind == "adamw":  # decoupled decay: W and a Kolen-Pollack B get identical Adam updates
        return torch.optim.AdamW(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=nesterov and momentum > 0,
    )


def build_optimizers(model: CompiledCircuit, train: Train) -> list[torch.optim.Optimizer]:
    """The forward optimiser and, if any feedback tensor is learned, the feedback one."""
    forward = [p for p in model.forward_parameters() if p.requires_grad]
    learned = [p for p in model.feedback_parameters() if p.requires_grad]
    fb_kind = train.feedback_optimizer or train.optimizer

    def pick(value: float, default: float) -> float:
        return default if value < 0 else value

    opts = [
        _optimizer(
            train.optimizer, forward, train.lr, train.momentum, train.weight_decay, train.nesterov
        ),
        _optimizer(
            fb_kind,
            learned,
            pick(train.feedback_lr, train.lr),
            pick(train.feedback_momentum, train.momentum),
            pick(train.feedback_weight_decay, train.weight_decay),
            train.nesterov,
        ),
    ]
    return [o for o in opts if o is not None]


def lr_factor(train: Train, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The schedule's multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    if train.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    if train.schedule == "step":
        epoch = step // max(steps_per_epoch, 1)
        return train.gamma ** sum(epoch >= m for m in train.milestones)
    return 1.0


def _autocast(train: Train, device: torch.device):
    if train.precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if train.precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def evaluate(
    model: CompiledCircuit,
    data: DataSource,
    batch_size: int,
    train: Train,
    device: torch.device,
) -> torch.Tensor:
    """Test accuracy (a 0-d tensor on the device)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), device=device, dtype=torch.long)
    with torch.no_grad(), _autocast(train, device):
        for x, y in data.test_batches(batch_size):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            correct += (model(x).argmax(1) == y).sum()
    model.train(was_training)
    return correct.double() / data.n_test


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(
    circuit: Circuit,
    train: Train,
    *,
    out: str | Path,
    coords: dict | None = None,
    run_config: dict | None = None,
    attrs: dict | None = None,
    resume: bool = False,
) -> Path:
    """Train ``circuit`` as ``train`` says and write the run's netCDF file to ``out``.

    ``coords`` become length-1 dimensions of every variable (default: ``rule`` and ``seed``);
    ``run_config`` is stored as JSON; ``attrs`` become global attributes. With ``resume=True`` the
    run continues from ``out.with_suffix(".ckpt")`` when it exists. Raises :class:`Diverged` when
    the loss becomes NaN/inf (after writing what was recorded).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    device = resolve_device(train.device)
    ddp = distributed.setup(device)  # under torchrun with WORLD_SIZE > 1 (biofa.train.distributed)
    if ddp is not None:
        device = ddp.device
    main = distributed.is_main(ddp)  # rank 0 records, evaluates, writes, logs
    torch.manual_seed(derive_seed(train.seed, "torch"))
    data = load(train.data, root=train.data_root, stream=train.stream).place(device)
    model = compile(
        circuit, input_shape=data.input_shape, num_classes=data.num_classes, seed=train.seed
    ).to(device)
    if train.hold_weight_norms:
        hold_weight_norms(model)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    step_fn = model if ddp is None else distributed.wrap(model, ddp)
    step_fn = torch.compile(step_fn) if train.compile else step_fn
    optimizers = build_optimizers(model, train)
    global_batch = train.batch_size * (ddp.world_size if ddp else 1)  # each rank: one shard
    per_epoch = data.steps_per_epoch(global_batch, drop_last=ddp is not None)
    total = train.epochs * per_epoch
    if train.max_steps:
        total = min(total, train.max_steps)
    schedulers = [
        torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(train, s, total, per_epoch))
        for o in optimizers
    ]
    scaler = torch.amp.GradScaler(device.type, enabled=train.precision == "fp16")
    recorder = run_recorder(model, circuit, train, device, coords, run_config, attrs)
    if not main:
        recorder = distributed.NullRecorder(recorder)
    ckpt_path = out.with_suffix(".ckpt")
    step, elapsed = 0, 0.0
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        for o, s in zip(optimizers, state["optimizers"]):
            o.load_state_dict(s)
        for sch, s in zip(schedulers, state["schedulers"]):
            sch.load_state_dict(s)
        scaler.load_state_dict(state["scaler"])
        recorder.load_state_dict(state["recorder"])
        step, elapsed = state["step"], state["elapsed"]
        log.info("resumed %s from step %d", out.name, step)

    def checkpoint() -> None:
        _save_atomic(
            {
                "model": model.state_dict(),
                "optimizers": [o.state_dict() for o in optimizers],
                "schedulers": [s.state_dict() for s in schedulers],
                "scaler": scaler.state_dict(),
                "recorder": recorder.state_dict(),
                "step": step,
                "elapsed": elapsed + time.perf_counter() - t0,
                "running": (loss_sum, correct, seen, bad_step),
                "summary": summary,
            },
            ckpt_path,
        )

    zero = torch.zeros((), device=device, dtype=torch.float64)
    loss_sum, correct, seen = zero.clone(), zero.clone(), 0
    bad_step = torch.full((), -1, device=device, dtype=torch.long)
    summary: dict[str, float] = {}
    if resume and ckpt_path.exists():
        loss_sum, correct, seen, bad_step = state["running"]
        summary = state["summary"]
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(
        total=total,
        initial=step,
        disable=None if main else True,
        desc=out.stem,
        unit="step",
        leave=False,
    )
    epoch = step // per_epoch
    try:
        while step < total:
            epoch = step // per_epoch
            epoch_t0 = time.perf_counter()
            _set_weight_decay(optimizers, train, epoch)
            batches = data.train_batches(
                global_batch,
                seed=train.seed,
                epoch=epoch,
                augment=train.augment,
                start_batch=step % per_epoch,
                drop_last=ddp is not None,
            )
            for x, y in batches:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if ddp is not None:
                    x, y = distributed.shard(x, y, ddp)
                if device.type == "cuda" and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(train, device):
                    logits = step_fn(x)
                    loss = F.cross_entropy(logits.float(), y)
                for o in optimizers:
                    o.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if train.normalize_grads:
                    for o in optimizers:
                        scaler.unscale_(o)
                    normalize_gradients(model)
                for o in optimizers:
                    scaler.step(o)
                scaler.update()
                for s in schedulers:
                    s.step()
                step += 1
                model.after_step(step, train.seed)  # rules' hooks, e.g. a weight-mirror phase
                detached = loss.detach()
                bad_step = torch.where(
                    (bad_step < 0) & ~torch.isfinite(detached),
                    torch.full_like(bad_step, step),
                    bad_step,
                )
                loss_sum += detached.double() * len(y)
                correct += (logits.detach().argmax(1) == y).sum().double()
                seen += len(y)
                bar.update(1)
                last = step == total or step % per_epoch == 0
                if device.type == "cpu" or step % train.record_every == 0 or last:
                    if ddp is not None:  # every rank stops at the same step
                        bad_step = distributed.all_reduce(bad_step, "max")
                    _check_finite(bad_step, recorder, out, epoch)
                if step % train.record_every == 0 or last:
                    if ddp is not None:  # loss and accuracy of the global batch
                        loss_sum = distributed.all_reduce(loss_sum)
                        correct = distributed.all_reduce(correct)
                        seen *= ddp.world_size
                    values = {
                        "loss": loss_sum / seen,
                        "train_accuracy": correct / seen,
                        "learning_rate": schedulers[0].get_last_lr()[0] if schedulers else train.lr,
                        "wall_time": elapsed + time.perf_counter() - t0,
                    }
                    probes = {}
                    if main:  # only rank 0 records: the others skip the probes and shadow pass
                        probes = projection_metrics(model)
                        probes.update(  # error/update angles: a shadow backward on this batch
                            shadow_metrics(
                                model,
                                x,
                                y,
                                autocast=lambda: _autocast(train, device),
                                loss_scale=scaler.get_scale(),
                            )
                        )
                    recorder.record(step, epoch, values, probes)
                    summary.update(
                        loss=float(values["loss"]), train=float(values["train_accuracy"])
                    )
                    loss_sum, correct, seen = zero.clone(), zero.clone(), 0
                if (
                    (train.eval_every and step % train.eval_every == 0)
                    or (not train.eval_every and step % per_epoch == 0)
                    or step == total
                ):
                    accuracy = evaluate(model, data, max(train.batch_size, 256), train, device)
                    recorder.record(step, epoch, {"test_accuracy": accuracy})
                    summary["test"] = float(accuracy)
                if train.checkpoint_every and step % train.checkpoint_every == 0 and main:
                    checkpoint()
                if step >= total:
                    break
            if main:
                _log_epoch(summary, epoch, train.epochs, time.perf_counter() - epoch_t0)
    except Diverged:
        bar.close()
        raise
    bar.close()
    path = recorder.write(out, status="complete")
    if main and ckpt_path.exists() and not train.checkpoint_every:
        ckpt_path.unlink()
    return path


def _set_weight_decay(optimizers: list[torch.optim.Optimizer], train: Train, epoch: int) -> None:
    """Weight decay of ``epoch``: each group's initial decay times ``weight_decay_gamma`` per
    milestone in ``weight_decay_milestones`` reached (a pure function of the epoch: resumable)."""
    if not train.weight_decay_milestones:
        return
    factor = train.weight_decay_gamma ** sum(epoch >= m for m in train.weight_decay_milestones)
    for o in optimizers:
        for group in o.param_groups:
            base = group.setdefault("initial_weight_decay", group["weight_decay"])
            group["weight_decay"] = base * factor


def _check_finite(bad_step: torch.Tensor, recorder: Recorder, out: Path, epoch: int) -> None:
    bad = int(bad_step)
    if bad < 0:
        return
    message = (
        f"loss became NaN/inf at step {bad} (epoch {epoch}); stopped. Metrics recorded "
        f"before it are kept in {out}"
    )
    recorder.write(out, status=f"diverged: loss not finite at step {bad}")
    raise Diverged(message)


def _log_epoch(summary: dict[str, float], epoch: int, epochs: int, seconds: float) -> None:
    parts = [f"epoch {epoch + 1}/{epochs}"]
    if "loss" in summary:
        parts.append(f"loss {summary['loss']:.4f}  train {100 * summary['train']:.1f}%")
    if "test" in summary:
        parts.append(f"test {100 * summary['test']:.1f}%")
    parts.append(f"{seconds:.1f} s")
    log.info("  ".join(parts))
