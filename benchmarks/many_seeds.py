"""Many seeds at once: ``biofa.train.fit(..., seeds=...)`` (K seeds as one vmapped computation) vs K
sequential ``biofa.train.fit`` runs of the same spec in the same process.

Both write one netCDF file per seed with the same schema; the table gives the end-to-end time of
all K runs (compile, training, record steps, evaluation, writing the files), the throughput in
seed-steps per second, the speedup, and the largest difference of the final test accuracy and of
the recorded loss between the two (they follow the same trajectories up to float rounding).
Repetitions alternate (sequential, batched, sequential, ...) in one process; medians are shown.

Run (writes ``benchmarks/results/many_seeds-<cpu|cuda>.json``)::

    python benchmarks/many_seeds.py                          # 16 seeds of circuits/ei_mlp.py
    python benchmarks/many_seeds.py --device cuda            # the GPU target: >= 8x
    python benchmarks/many_seeds.py --seeds 4 --epochs 1 --reps 1   # smoke test

Targets (issue 7): 16 seeds of ei_mlp at >= 8x the throughput of 16 sequential runs on a GPU,
>= 2x on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import RESULTS, environment, median, resolve_device, table, write_json  # noqa: E402

from biofa.cli.spec import load_spec  # noqa: E402
from biofa.data import load  # noqa: E402
from biofa.train import fit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def final(path: Path) -> tuple[float, np.ndarray]:
    with xr.open_dataset(path) as ds:
        acc = ds.test_accuracy.values.ravel()
        return float(acc[~np.isnan(acc)][-1]), ds.loss.values.ravel()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default=str(ROOT / "circuits" / "ei_mlp.py"))
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--epochs", type=int, default=5, help="epochs per run (spec: 20)")
    p.add_argument("--record-every", type=int, default=0, help="0: the spec's")
    p.add_argument("--device", default="auto")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch default)")
    p.add_argument("--out", help="JSON path")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("biofa").setLevel(logging.WARNING)
    device = resolve_device(args.device)
    spec = load_spec(args.spec)
    circuit = spec.circuit_fn()
    train = spec.train.replace(epochs=args.epochs, device=device.type)
    if args.record_every:
        train = train.replace(record_every=args.record_every)
    seeds = list(range(args.seeds))
    work = Path(tempfile.mkdtemp(prefix="biofa-many-seeds-"))
    times: dict[str, list[float]] = {"sequential": [], "batched": []}
    cpu: dict[str, list[float]] = {"sequential": [], "batched": []}
    env = environment(device)
    print(f"{env['device']}, torch {env['torch']}, {env['date']}", file=sys.stderr)

    def sequential(tag):
        return [fit(circuit, train.replace(seed=s), out=work / tag / f"seed-{s}.nc") for s in seeds]

    def batched(tag):
        outs = [work / tag / f"seed-{s}.nc" for s in seeds]
        return fit(circuit, train, out=outs, seeds=seeds)

    paths = {}
    try:
        for r in range(args.reps):
            for name, fn in (("sequential", sequential), ("batched", batched)):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                c0, t0 = time.process_time(), time.perf_counter()
                paths[name] = fn(f"{name}-{r}")
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                print(f"  rep {r + 1} {name}: {times[name][-1]:.1f} s wall, "
                      f"{cpu[name][-1]:.1f} s cpu", file=sys.stderr, flush=True)
        acc_diff, loss_diff = 0.0, 0.0
        for a, b in zip(paths["sequential"], paths["batched"]):
            (acc_a, loss_a), (acc_b, loss_b) = final(a), final(b)
            acc_diff = max(acc_diff, abs(acc_a - acc_b))
            loss_diff = max(loss_diff, float(np.nanmax(np.abs(loss_a - loss_b))))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_run_steps = train.epochs * load(train.data, root=train.data_root).steps_per_epoch(
        train.batch_size)
    if train.max_steps:
        per_run_steps = min(per_run_steps, train.max_steps)
    rows, out_rows = [], []
    for name in ("sequential", "batched"):
        wall, c = median(times[name]), median(cpu[name])
        steps = per_run_steps * len(seeds)
        speed = median(times["sequential"]) / wall
        speed_cpu = median(cpu["sequential"]) / c
        rows.append([f"{len(seeds)} x fit" if name == "sequential" else "fit(seeds=...)",
                     f"{wall:.1f}", f"{c:.1f}",
                     f"{steps / wall:.0f}",
                     f"{speed:.2f}", f"{speed_cpu:.2f}"])
        out_rows.append({"mode": name, "wall_s": wall, "cpu_s": c, "wall_all": times[name],
                         "cpu_all": cpu[name], "seed_steps": steps,
                         "seed_steps_per_s": steps / wall,
                         "speedup_wall": speed, "speedup_cpu": speed_cpu})
    print(f"### {len(seeds)} seeds of {spec.name}, {train.epochs} epochs, batch "
          f"{train.batch_size}, record_every {train.record_every}, on {env['device']} "
          f"(median of {args.reps})\n")
    print(table(["mode", "wall s", "cpu s", "seed-steps/s", "speedup (wall)", "speedup (cpu)"],
                rows))
    print(f"\nlargest difference batched vs sequential: final test accuracy {acc_diff:.2e}, "
          f"recorded loss {loss_diff:.2e}")
    out = Path(args.out) if args.out else RESULTS / f"many_seeds-{device.type}.json"
    write_json({"benchmark": "many_seeds", **env, "argv": sys.argv[1:], "spec": spec.name,
                "seeds": len(seeds), "epochs": train.epochs, "batch_size": train.batch_size,
                "record_every": train.record_every, "rows": out_rows,
                "max_final_accuracy_diff": acc_diff, "max_loss_diff": loss_diff}, out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
