"""Data-parallel training over several processes (``torchrun``): DistributedDataParallel glue.

``torchrun --nproc_per_node=N -m biofa.run SPEC`` (or ``--nnodes``/``--rdzv-endpoint`` for several
machines) starts ``N`` copies of the command line; :func:`biofa.train.fit` notices the
``torchrun`` environment (``WORLD_SIZE > 1``), joins the process group (NCCL on GPUs, gloo on
CPUs) and trains one model replica per process:

* **Batches.** ``Train.batch_size`` is the batch of *one* process; every step draws the global
  batch of ``batch_size * world_size`` examples from the seed's permutation (the same on every
  rank) and each rank takes its contiguous shard ``[rank * B, (rank + 1) * B)``. The last,
  incomplete global batch of an epoch is dropped, so shards are always equal and the averaged
  gradient is the gradient of the global batch's mean loss: ``N`` processes with batch ``B``
  follow the trajectory of one process with batch ``N * B`` (without batch norm, see below).
* **Parameters.** The model is wrapped in ``DistributedDataParallel``: every parameter,
  forward and feedback, learned or fixed, and every buffer is broadcast from rank 0 at the start;
  gradients of every learned tensor -- forward weights and learned feedback tensors alike, whose
  pseudo-gradients come out of the rules' backward as ordinary ``.grad`` -- are averaged across
  ranks. Fixed feedback never changes, and rules that recompute feedback from ``W`` (sign rules,
  brSF's hash) or update it in ``after_step`` (weight mirror, seeded by ``(seed, group, step)``)
  see identical inputs on every rank, so feedback stays identical everywhere.
* **Batch norm** normalises with each rank's own shard (as ``torch`` DDP does by default); its
  running statistics are rank 0's, broadcast before every forward. So with batch norm ``N x B`` is
  close to, not equal to, one process with ``N * B``.
* **Rank 0** alone records metrics, evaluates the test set, writes the netCDF file and the
  checkpoints, logs and shows the progress bar. The recorded ``loss`` and ``train_accuracy`` are
  summed over all ranks (one all-reduce per record step); the NaN guard is all-reduced at its
  checks, so every rank stops at the same step. Other ranks do not compute the probes.
* **Resume.** Every rank loads rank 0's checkpoint (``--resume``), so the replicas restart equal.

Between record steps nothing waits for the host; the only collectives are DDP's gradient
all-reduce (overlapped with the backward), plus one tiny all-reduce of the NaN flag per step on
CPU-only runs, where ``fit`` checks every step.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["Context", "NullRecorder", "all_reduce", "from_env", "is_main", "setup", "shard", "wrap"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """This process's place in the group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the ``torchrun`` environment (``(0, 1, 0)``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


def setup(device: torch.device) -> Context | None:
    """Join the process group when launched by ``torchrun`` with more than one process.

    Returns ``None`` for a single process. With CUDA every process uses ``cuda:LOCAL_RANK``
    and NCCL; otherwise gloo on the CPU. Initialises the group once per process (later calls,
    e.g. the runs of a sweep, reuse it).
    """
    rank, world, local = from_env()
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return None
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        log.debug("joined process group: rank %d of %d", rank, world)
    return Context(dist.get_rank(), dist.get_world_size(), local, device)


def is_main(ctx: Context | None = None) -> bool:
    """True on rank 0 (or without a process group)."""
    if ctx is not None:
        return ctx.main
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def wrap(module: nn.Module, ctx: Context) -> nn.Module:
    """``DistributedDataParallel`` around ``module`` (which must already be on ``ctx.device``)."""
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def shard(x: Tensor, y: Tensor, ctx: Context) -> tuple[Tensor, Tensor]:
    """This rank's contiguous part of a global batch (all parts equal: see the module docstring)."""
    n = len(y) // ctx.world_size
    sl = slice(ctx.rank * n, (ctx.rank + 1) * n)
    return x[sl], y[sl]


def all_reduce(t: Tensor, op: str = "sum") -> Tensor:
    """``t`` reduced over every rank (in place, returned), or ``t`` itself without a group."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t


class NullRecorder:
    """Stands in for the :class:`~biofa.measure.record.Recorder` on ranks other than 0: records
    nothing,
    writes nothing (``write`` returns the path rank 0 writes)."""

    def __init__(self, recorder=None) -> None:
        self.projections = getattr(recorder, "projections", [])

    def record(self, *args, **kwargs) -> None:
        return None

    def write(self, out, status: str = "complete"):
        from pathlib import Path

        return Path(out)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None
