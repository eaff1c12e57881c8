"""Timing helpers shared by the benchmarks: devices, interleaved repetitions, medians, tables."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import torch

from biofa.train.provenance import device_name

RESULTS = Path(__file__).resolve().parent / "results"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)




def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device.type, dtype=dtype)


def interleaved(
    rows: dict[str, Callable[[], None]],
    device: torch.device,
    *,
    reps: int,
    steps: int,
    warmup: int,
    on_row_start: Callable[[str], None] | None = None,
    on_row_end: Callable[[str], None] | None = None,
    log: Callable[[str], None] | None = None,
    clock: str = "wall",
) -> dict[str, list[float]]:
    """Seconds per call of each row, ``reps`` times, rows interleaved within every repetition.

    Each row first runs ``warmup`` calls; then every repetition times ``steps`` calls of each row in
    turn (same order every repetition), so slow drifts of the machine (other jobs, clocks) hit all
    rows alike and per-repetition ratios stay meaningful. ``clock="cpu"`` measures this process's
    CPU time (``time.process_time``) instead of wall time: on a CPU shared with other jobs, with
    one intra-op thread, it excludes the time spent waiting for a core.
    """
    now = time.process_time if clock == "cpu" else time.perf_counter
    for fn in rows.values():
        for _ in range(warmup):
            fn()
        sync(device)
    times: dict[str, list[float]] = {name: [] for name in rows}
    for r in range(reps):
        for name, fn in rows.items():
            if on_row_start:
                on_row_start(name)
            sync(device)
            t0 = now()
            for _ in range(steps):
                fn()
            sync(device)
            times[name].append((now() - t0) / steps)
            if on_row_end:
                on_row_end(name)
        if log:
            log(f"  rep {r + 1}/{reps} done")
    return times


def paired_ratio(times: list[float], base: list[float]) -> float:
    """Median over repetitions of ``t_row / t_base`` within the same repetition."""
    return statistics.median(t / b for t, b in zip(times, base))


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def environment(device: torch.device) -> dict:
    return {
        "device": device_name(device),
        "device_type": device.type,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }


def write_json(obj: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    return path


def table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured Markdown table (also readable in a terminal)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)
