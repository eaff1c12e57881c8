"""What recording metrics every 100 steps costs a CNN run, against not recording.

Two measurements of the spec's circuit (default ``circuits/ei_cnn.py`` with feedback alignment
and the spec's ``Train``: embedded digits, batch 32, Adam), both in this process:

1. **Interleaved blocks** (the figure to quote). Each repetition times 100 training steps
   (forward, backward, optimiser step) and then one record exactly as
   :func:`biofa.train.fit` makes it (running means, the alignment probes, the shadow backward
   for ``error_angle``/``update_angle``, the Recorder) on the last batch. The overhead of
   recording every 100 steps is the median over repetitions of ``record / (100 steps)``.
2. **Whole runs** (``--fit-reps``; a cross-check, noisier). ``fit`` end to end with
   ``record_every=100`` and with ``record_every=10**9``, interleaved (order flipped every
   repetition). ``fit`` records at every epoch end in both arms (the per-epoch summary), so the
   difference is the records at multiples of 100 that are not epoch ends; test accuracy is
   evaluated only at the end (``eval_every`` huge) in both. Wall and process CPU time are both
   reported: on a shared machine the CPU time is the steadier of the two.

    python benchmarks/recording_overhead.py                      # CPU, 1 thread
    python benchmarks/recording_overhead.py --device cuda --set width=64

Prints a table; writes ``benchmarks/results/recording_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import biofa.data as datasets  # noqa: E402
from biofa import compile  # noqa: E402
from biofa.cli.spec import load_spec, parse_overrides, run_points  # noqa: E402
from biofa.measure.probes import projection_metrics  # noqa: E402
from biofa.measure.record import Recorder  # noqa: E402
from biofa.measure.shadow import shadow_metrics  # noqa: E402
from biofa.train import build_optimizers, fit, resolve_device  # noqa: E402

NEVER = 10**9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def blocks(point, train, device: torch.device, every: int, reps: int) -> dict:
    """Interleaved timings of ``every`` training steps and of one record (module docstring)."""
    data = datasets.load(train.data, root=train.data_root).to(device)
    model = compile(point.circuit, input_shape=data.input_shape, num_classes=data.num_classes,
                    seed=train.seed).to(device)  # fmt: skip
    optimizers = build_optimizers(model, train)
    slices = [s for s, _ in model.projection_slices()]
    recorder = Recorder(
        projections=[(s.projection, s.source, s.target, s.op) for s in slices],
        coords={"rule": "x", "seed": 0},
        run_config={},
        attrs={},
    )
    batches = []
    epoch = 0
    while len(batches) < every:
        batches += list(data.train_batches(train.batch_size, seed=0, epoch=epoch))
        epoch += 1
    zero = torch.zeros((), device=device, dtype=torch.float64)

    def steps() -> tuple:
        loss_sum, correct, seen = zero.clone(), zero.clone(), 0
        for x, y in batches[:every]:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            for o in optimizers:
                o.zero_grad(set_to_none=True)
            loss.backward()
            for o in optimizers:
                o.step()
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(1) == y).sum().double()
            seen += len(y)
        return loss_sum, correct, seen, x, y

    def record(step: int, loss_sum, correct, seen, x, y) -> None:
        values = {"loss": loss_sum / seen, "train_accuracy": correct / seen,
                  "learning_rate": train.lr, "wall_time": 0.0}  # fmt: skip
        probes = projection_metrics(model)
        probes.update(shadow_metrics(model, x, y))
        recorder.record(step, 0, values, probes)

    model.train()
    record(0, *steps())  # warm-up
    step_s, record_s = [], []
    for rep in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        state = steps()
        _sync(device)
        t1 = time.perf_counter()
        record(rep + 1, *state)
        _sync(device)
        t2 = time.perf_counter()
        step_s.append((t1 - t0) / every)
        record_s.append(t2 - t1)
    ratios = [r / (every * s) for r, s in zip(record_s, step_s)]
    return {"step_s": step_s, "record_s": record_s, "overhead": ratios,
            "median_overhead": statistics.median(ratios)}  # fmt: skip


def one_run(point, train, out: Path) -> tuple[float, float, int, int]:
    """Wall time and process CPU time of ``fit``, number of records, number of steps."""
    t0, c0 = time.perf_counter(), time.process_time()
    path = fit(point.circuit, train, out=out, coords=dict(point.coords))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    with xr.open_dataset(path) as ds:
        records = int(ds.loss.notnull().sum())
        steps = int(ds.step.max())
    return seconds, cpu, records, steps


def whole_runs(point, base, every: int, reps: int) -> dict:
    """``fit`` end to end, ``record_every=every`` vs never, interleaved."""
    arms = {f"record_every={every}": every, "no recording": NEVER}
    times: dict[str, list[float]] = {k: [] for k in arms}
    cpu: dict[str, list[float]] = {k: [] for k in arms}
    records: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            for name in list(arms) if rep % 2 == 0 else list(reversed(arms)):
                train = base.replace(record_every=arms[name])
                out = Path(tmp) / f"{rep}.nc"
                seconds, cpu_s, records[name], steps = one_run(point, train, out)
                times[name].append(seconds)
                cpu[name].append(cpu_s)
                print(f"  fit rep {rep}  {name:<18} {seconds:7.2f} s wall  {cpu_s:7.2f} s CPU  "
                      f"({records[name]} records)")  # fmt: skip
    on, off = (statistics.median(t) for t in times.values())
    cpu_on, cpu_off = (statistics.median(t) for t in cpu.values())
    return {"steps": steps, "records": records, "wall_time_s": times, "cpu_time_s": cpu,
            "median_wall_time_s": dict(zip(arms, (on, off))), "measured_ratio": on / off,
            "median_cpu_time_s": dict(zip(arms, (cpu_on, cpu_off))),
            "measured_cpu_ratio": cpu_on / cpu_off}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--spec", default=str(ROOT / "circuits" / "ei_cnn.py"))
    add("--set", nargs="*", default=[], metavar="KEY=VALUE", help="spec overrides")
    add("--every", type=int, default=100, help="record every this many steps")
    add("--reps", type=int, default=15, help="repetitions of (EVERY steps, one record)")
    add("--fit-reps", type=int, default=2, help="whole-run repetitions per arm (0: skip)")
    add("--epochs", type=int, default=25, help="epochs of the whole runs")
    add("--device", default="cpu")
    add("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    add("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"rule": "feedback_alignment", **parse_overrides(args.set)}
    (point,) = run_points(load_spec(args.spec), overrides)
    device = resolve_device(args.device)
    train = point.train.replace(device=str(device.type))
    result = {
        "benchmark": "recording_overhead",
        "spec": Path(args.spec).name,
        "overrides": {k: str(v) for k, v in overrides.items()},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "record_every": args.every,
        "batch_size": train.batch_size,
    }
    result["blocks"] = b = blocks(point, train, device, args.every, args.reps)
    print(f"{'rep':>4}{'step ms':>10}{'record ms':>11}{'overhead %':>12}")
    for i, (s, r, o) in enumerate(zip(b["step_s"], b["record_s"], b["overhead"])):
        print(f"{i:>4}{1e3 * s:>10.2f}{1e3 * r:>11.1f}{100 * o:>12.2f}")
    print(f"median: recording every {args.every} steps adds {100 * b['median_overhead']:.2f} % "
          f"(one record {1e3 * statistics.median(b['record_s']):.1f} ms, "
          f"one step {1e3 * statistics.median(b['step_s']):.2f} ms)")  # fmt: skip
    if args.fit_reps:
        base = train.replace(epochs=args.epochs, eval_every=NEVER)
        result["whole_runs"] = w = whole_runs(point, base, args.every, args.fit_reps)
        wall, cpu = w["measured_ratio"], w["measured_cpu_ratio"]
        print(f"whole runs ({w['steps']} steps, records {w['records']}): median ratio "
              f"{wall:.4f} wall ({100 * (wall - 1):+.2f} %), {cpu:.4f} CPU "
              f"({100 * (cpu - 1):+.2f} %)")  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recording_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'recording_overhead.json'}")
    return result


if __name__ == "__main__":
    main()
