"""End-to-end training on CIFAR-10: epoch time and images/s per rule, and the data path's share.

The data are the CIFAR-10 JPEG copy at ``../shared/data/cifar10-jpeg.zip`` (relative to the
repository; decoded once by ``biofa.data.load`` and cached), resident on the device as uint8 with
batches, random crop + flip and normalisation made there -- exactly ``biofa.train.fit``'s data
path (``DataSource.train_batches``, ``Train(augment=True)``). Each row trains ``--steps`` steps
of the model through that path (plus ``--warmup`` untimed ones): forward, loss, backward, SGD;
the epoch time is the measured time per step times the steps of one epoch (``--full-epoch``
runs whole epochs instead). The data column is the time the same batches take to be made alone
(indexing, crop/flip, normalisation), as a share of the training step (target: <= 5 %).

Run (writes ``benchmarks/results/epoch_time-<cpu|cuda>.json``; skips cleanly without the zip)::

    python benchmarks/epoch_time.py --device cuda             # ResNet-18, batch 512, bf16,
                                                              #   channels_last, every rule
    python benchmarks/epoch_time.py                           # CPU, reduced: ResNet-20,
                                                              #   batch 128, 4 steps, 5 rules
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _models  # noqa: E402
from _timing import (  # noqa: E402
    RESULTS,
    autocast,
    environment,
    median,
    resolve_device,
    sync,
    table,
    write_json,
)

import biofa.data as datasets  # noqa: E402
import biofa.rules  # noqa: E402
from biofa.train import Train, build_optimizers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CPU_RULES = "backprop,feedback_alignment,usf,kolen_pollack,direct_feedback_alignment"


def make_step(model, opts, device, precision):
    """One training step as ``fit`` does it (with the rules' ``after_step`` hook)."""
    hook = getattr(model, "after_step", None)
    done = 0

    def step(x, y):
        nonlocal done
        with autocast(device, precision):
            loss = F.cross_entropy(model(x).float(), y)
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
        done += 1
        if hook is not None:
            hook(done, 0)

    return step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"))
    p.add_argument("--device", default="auto")
    p.add_argument("--model", help="default resnet18 on a GPU, resnet20 on a CPU")
    p.add_argument("--rules", help=f"comma list (default: all on a GPU; {CPU_RULES} on a CPU)")
    p.add_argument("--batch", type=int, help="default 512 GPU, 128 CPU")
    p.add_argument("--precision", help="default bf16 on a GPU, fp32 on a CPU")
    p.add_argument("--steps", type=int, help="timed steps per rule (default 50 GPU, 4 CPU)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--full-epoch", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out")
    args = p.parse_args(argv)
    if not Path(args.data).exists():
        print(f"skipped: {args.data} not found (CIFAR-10 JPEG zip)", file=sys.stderr)
        return 0
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    if not gpu:
        torch.set_num_threads(args.threads or 1)
    model_name = args.model or ("resnet18" if gpu else "resnet20")
    batch = args.batch or (512 if gpu else 128)
    precision = args.precision or ("bf16" if gpu else "fp32")
    steps = args.steps or (50 if gpu else 4)
    rules = (args.rules or (",".join(biofa.rules.available()) if gpu else CPU_RULES)).split(",")
    fmt = torch.channels_last if gpu else torch.contiguous_format
    env = environment(device)
    print(f"{env['device']}, torch {env['torch']}, {env['date']}", file=sys.stderr)
    data = datasets.load(args.data)
    if gpu:
        data = data.to(device)
    per_epoch = data.steps_per_epoch(batch)
    clock = time.perf_counter if gpu else time.process_time

    def batches(epoch: int):
        for x, y in data.train_batches(batch, seed=0, epoch=epoch, augment=True):
            yield x.contiguous(memory_format=fmt), y

    def data_only(n: int) -> float:
        it = batches(99)
        sync(device)
        t0 = clock()
        for _ in range(n):
            x, _ = next(it)
        sync(device)
        return (clock() - t0) / n

    rows, skipped = [], {}
    train = Train(optimizer="sgd", lr=0.05, momentum=0.9)
    for rule in ["plain PyTorch", *rules]:
        try:
            torch.manual_seed(0)
            if rule == "plain PyTorch":
                model = _models.plain(model_name).to(device, memory_format=fmt)
                opts = [torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)]
            else:
                model = _models.biofa_model(model_name, rule).to(device, memory_format=fmt)
                opts = build_optimizers(model, train)
        except Exception as exc:  # noqa: BLE001
            skipped[rule] = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            continue
        n = per_epoch if args.full_epoch else steps
        it = batches(0)
        step = make_step(model, opts, device, precision)
        for _ in range(args.warmup):
            step(*next(it))
        sync(device)
        t0 = clock()
        for _ in range(n):
            try:
                x, y = next(it)
            except StopIteration:
                it = batches(1)
                x, y = next(it)
            step(x, y)
        sync(device)
        per_step = (clock() - t0) / n
        t_data = median([data_only(max(2, min(n, 10))) for _ in range(3)])
        rows.append({"rule": rule, "step_ms": 1e3 * per_step, "images_per_s": batch / per_step,
                     "epoch_s": per_step * per_epoch, "data_ms": 1e3 * t_data,
                     "data_share": t_data / per_step})
        print(f"  {rule}: {1e3 * per_step:.1f} ms/step", file=sys.stderr, flush=True)
    base = rows[0]["step_ms"]
    printed = [[r["rule"], f"{r['step_ms']:.1f}", f"{r['step_ms'] / base:.3f}",
                f"{r['images_per_s']:.0f}", f"{r['epoch_s']:.0f}", f"{r['data_ms']:.2f}",
                f"{100 * r['data_share']:.1f} %"] for r in rows]
    span = "full epoch" if args.full_epoch else f"{steps} steps"
    print(f"### {model_name}, CIFAR-10 (JPEG copy, {data.n_train} train images), batch "
          f"{batch}, {precision}{', channels_last' if gpu else ''}, augment, {env['device']} "
          f"({'wall' if gpu else 'cpu'} time, {span} per row)\n")
    print(table(["rule", "ms/step", "vs plain", "img/s", "epoch s", "data ms/batch",
                 "data share"], printed))
    for rule, why in skipped.items():
        print(f"skipped {rule}: {why}")
    out = Path(args.out) if args.out else RESULTS / f"epoch_time-{device.type}.json"
    write_json({"benchmark": "epoch_time", **env, "argv": sys.argv[1:], "model": model_name,
                "batch": batch, "precision": precision, "steps": steps,
                "steps_per_epoch": per_epoch, "rows": rows, "skipped": skipped}, out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
