"""Checks before training: will the circuit fit in memory, does the batch fit the data, and (for
``--dry-run``) does everything short of training work.

:func:`memory_needed` estimates from the declaration's shapes alone, before any tensor exists, a
lower bound of what one training step needs: every weight with its gradient and optimiser state
and, for one batch, every area's activity with its gradient. :func:`check_memory` refuses (one
``ValueError`` line with both numbers and what is available) a circuit above the memory available
on its device, instead of an allocator's C++ traceback or an out-of-memory error mid-run.
:func:`dry_run` loads the data, checks memory, compiles the circuit and runs one forward and
backward pass on two training images (no optimiser step, nothing written).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from biofa.circuit import Circuit
from biofa.circuit.kind import WeightedKind
from biofa.circuit.validation import infer_shapes
from biofa.circuit.wiring import populations_of
from biofa.data import DataSource
from biofa.data import load as load_data
from biofa.nn import compile
from biofa.train.config import Train

__all__ = ["Needed", "available_memory", "check_batch", "check_memory", "dry_run", "memory_needed"]

log = logging.getLogger(__name__)

_OPTIMIZER_STATES = {"sgd": 1, "adam": 2, "adamw": 2, "manhattan": 1}  # buffers per weight


@dataclass(frozen=True)
class Needed:
    """Estimated memory of one training step (bytes), from shapes only."""

    weights: int  # number of weights
    weight_bytes: int  # with gradients and optimiser state
    activations: int  # numbers per example, over every area
    activation_bytes: int  # one batch, with gradients

    @property
    def total(self) -> int:
        return self.weight_bytes + self.activation_bytes


def memory_needed(
    circuit: Circuit,
    train: Train,
    input_shape: tuple[int, ...],
    num_classes: int,
    runs: int = 1,
    batch: int | None = None,
) -> Needed:
    """A lower bound of the memory ``runs`` models of ``circuit`` need to train a step on
    batches of ``batch`` examples (default ``train.batch_size``)."""
    batch = train.batch_size if batch is None else batch
    shapes = infer_shapes(circuit, tuple(input_shape), num_classes)
    weights = 0
    for p in circuit.projections:
        if not isinstance(p.kind, WeightedKind):
            continue
        source = shapes[p.source_area].out
        target = shapes[p.target_area].pre
        columns = _channels(circuit, p.source_area, p.source_population, source, num_classes)
        columns *= p.kind.columns_per_channel(source)
        rows = _channels(circuit, p.target_area, p.target_population, target, num_classes)
        weights += math.prod(p.kind.weight_shape(rows, columns, target))
    activations = sum(math.prod(shapes[a].out) for a in circuit.areas if a in shapes)
    states = _OPTIMIZER_STATES.get(train.optimizer, 1)
    if train.optimizer in ("sgd", "manhattan") and not train.momentum:
        states = 0
    per_number = 2 if train.precision in ("bf16", "fp16") else 4
    return Needed(
        weights=weights * runs,
        weight_bytes=weights * runs * 4 * (2 + states),
        activations=activations,
        activation_bytes=activations * batch * runs * per_number * 2,
    )


def _channels(circuit: Circuit, area: str, population: str | None, shape, num_classes: int) -> int:
    """Channels of ``area`` (``shape``) that ``population`` (``None``: all of them) has."""
    if population is None:
        return shape[0]
    sizes = {q.name: q.size for q in populations_of(circuit.areas[area], num_classes)}
    return sizes.get(population, shape[0])


def available_memory(device: torch.device) -> int | None:
    """Free memory on ``device`` in bytes (CUDA: free device memory; CPU: available RAM), or
    ``None`` when it cannot be told."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:  # noqa: BLE001 - no driver, no device: say nothing
            return None
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None


def check_memory(
    circuit: Circuit, train: Train, data: DataSource, device: torch.device, runs: int = 1
) -> Needed:
    """``ValueError`` (one line) when :func:`memory_needed` exceeds the available memory."""
    batch = min(train.batch_size, data.n_train)  # a batch is at most the training set
    needed = memory_needed(circuit, train, data.input_shape, data.num_classes, runs, batch)
    free = available_memory(device)
    if free is not None and needed.total > free:
        raise ValueError(
            f"circuit {circuit.name!r} needs at least {_size(needed.total)} of memory to train: "
            f"{_size(needed.weight_bytes)} for its {needed.weights:,} weights (with gradients "
            f"and optimiser state) and {_size(needed.activation_bytes)} for the activations of "
            f"one batch of {batch}; {_size(free)} is available on {device.type} "
            "(make the circuit or batch_size smaller)"
        )
    return needed


def check_batch(train: Train, data: DataSource) -> None:
    """Warn when ``train.batch_size`` is larger than the training set."""
    if train.batch_size > data.n_train:
        log.warning(
            "Train.batch_size=%d is larger than the training set of %r (%d examples): every "
            "step sees the whole set",
            train.batch_size,
            data.name,
            data.n_train,
        )


def dry_run(
    circuit: Circuit, train: Train, device: torch.device, data: DataSource | None = None
) -> str:
    """Everything short of training for one run (module docstring); a one-line summary."""
    if data is None:
        data = load_data(train.data, root=train.data_root, stream=train.stream)
    check_batch(train, data)
    needed = check_memory(circuit, train, data, device)
    model = compile(circuit, input_shape=data.input_shape, num_classes=data.num_classes,
                    seed=train.seed).to(device)  # fmt: skip
    raw, labels = data.train_examples(torch.arange(min(2, data.n_train)))
    x, y = data.normalize(raw.to(device)), labels.to(device)
    model.train(len(y) > 1)  # batch norm needs two examples to normalise over
    F.cross_entropy(model(x).float(), y).backward()
    return (
        f"{data.name}: {data.n_train} training images of shape {tuple(data.input_shape)}, "
        f"{data.num_classes} classes; {needed.weights:,} weights, about {_size(needed.total)} "
        "to train"
    )


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"
