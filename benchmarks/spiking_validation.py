"""Spiking validation speed: biofa against the same network in plain Brian2, 1,000 MNIST images.

    python benchmarks/spiking_validation.py                  # cpp_standalone and numpy, 3 reps
    python benchmarks/spiking_validation.py --quick          # smoke test (numpy, 100 images)
    python benchmarks/spiking_validation.py --targets cpp_standalone --reps 5
    python benchmarks/spiking_validation.py --circuits populations

Two circuits (``--circuits``, both by default), trained one epoch with feedback alignment:
``ei``, today's 784-(E 100 + I 25)-10 LIF with its feedback pathway, and ``populations``, the
same sizes wired population to population (local PV interneurons on 20 % of the pixels,
inhibiting half of the pyramidal cells, which alone are read out; forward only). Every image is
shown for 100 ms, 100 copies side by side. Each measurement
is a fresh process, as a user's script is (``_spiking_worker.py``; imports and loading the inputs
not timed), and the rows of one repetition are interleaved (biofa cold, plain cold, biofa warm,
plain warm, then numpy), so drifts of the machine hit both sides alike:

* **biofa**: ``biofa.spiking.validate`` end to end (test images, rate model, calibration, network,
  code generation, compilation, simulation, comparison), split into phases; its Brian2 part is
  network construction + code generation + compilation + simulation + reading the spikes.
* **plain**: ``_plain_brian2.py``, the same network written by hand in plain Brian2 from the
  arrays of biofa's plan (weights, biases, rates; exported once, not timed).
* ``cold``: an empty build folder; ``warm``: the same folder again in a new process (what
  rerunning a script gives); ``rerun`` (biofa): the built program shown 1,000 other images
  through ``run_args``.

Before timing, the plain network's spikes are checked against biofa's (``_spiking_compare.py``):
the same rates and predictions within Poisson noise, or the comparison would be meaningless.
Prints tables and writes JSON (every run) to ``benchmarks/results/spiking_validation.json``.
Skips (exit 0) without the MNIST zip (``--data``, default ``$BIOFA_MNIST`` or
``/work/shared/data/mnist-png.zip``) or Brian2.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from biofa import Circuit, E, I, compile, dense
from biofa.data import load

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _spiking_compare import compare  # noqa: E402
from _timing import RESULTS, environment, table, write_json  # noqa: E402

DEFAULT_DATA = os.environ.get("BIOFA_MNIST", "/work/shared/data/mnist-png.zip")
SETTLE, DT = 0.02, 1e-4  # biofa's defaults, given to the plain script


def circuit(name: str = "ei") -> Circuit:
    """``"ei"``: today's 784-(E 100 + I 25)-10, area to area, with its feedback pathway;
    ``"populations"``: the same sizes wired population to population (``h.pv`` local PV
    interneurons driven by 20 % of the pixels, inhibiting half of ``h.pyr``; only ``h.pyr`` is
    read out), translated forward only."""
    if name not in CIRCUITS:
        raise ValueError(f"circuit {name!r} is not one of {', '.join(CIRCUITS)}")
    c = Circuit(f"mnist_{name}_spiking")
    c.input("image", kind="E")
    if name == "ei":
        c.area("h", E(100), I(25))
        c.readout("out")
        c.connect("image", "h", dense(flatten=True))
        c.connect("h", "out", dense())
    else:
        c.area("h", E(100, "pyr"), I(25, "pv"))
        c.readout("out")
        c.connect("image", "h.pyr", dense(flatten=True))
        c.connect("image", "h.pv", dense(flatten=True, p=0.2))
        c.connect("h.pv", "h.pyr", dense(p=0.5))
        c.connect("h.pyr", "out", dense())
    c.feedback_everywhere("feedback_alignment")
    return c


CIRCUITS = ("ei", "populations")


def train(data, epochs: int, name: str = "ei", seed: int = 0, max_batches: int | None = None):
    torch.manual_seed(seed)
    model = compile(circuit(name), input_shape=data.input_shape, num_classes=10, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for epoch in range(epochs):
        for k, (x, y) in enumerate(data.train_batches(64, seed=seed, epoch=epoch)):
            if max_batches is not None and k >= max_batches:
                break
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def export_plain(model, data, images: int, duration: float, copies: int, path: Path) -> None:
    """The plain script's arrays: biofa's plan and the very images and errors ``validate`` uses."""
    import _plain_brian2

    from biofa.spiking import plan_for
    from biofa.spiking.rates import probe
    from biofa.spiking.translate import intensities
    from biofa.spiking.validate import test_subset

    index = test_subset(data.n_test, images, seed=0)
    raw, labels = data.test_examples(index)
    trace = probe(model, data.normalize(raw), labels)
    copies = max(1, min(copies, len(index)))
    arrays = _plain_brian2.export(
        plan_for(model, data),
        intensities(raw).flatten(1).numpy(),
        trace.output_error,
        copies=copies,
        segments=math.ceil(len(index) / copies),
        duration=duration,
        settle=SETTLE,
        dt=DT,
        seed=0,
    )
    np.savez(path, **arrays)


def worker(args, work: Path, side: str, target: str, kind: str, rep: int) -> dict:
    """One timed run in a new process (``_spiking_worker.py``); its result JSON plus labels."""
    folder = work / f"{target}-{side}-{rep}"  # cold: new (empty); warm: the same again
    result = work / f"{target}-{side}-{kind}-{rep}.json"
    command = [sys.executable, str(HERE / "_spiking_worker.py"), side]
    if side == "biofa":
        command += ["--model", str(work / "model.pt"), "--data", args.data, "--cache", str(folder)]
        command += ["--circuit", work.name]
        command += ["--images", str(args.images), "--duration", str(args.duration)]
        command += ["--copies", str(args.copies)] + (["--rerun"] if kind == "warm" else [])
    else:
        command += [str(work / "plain.npz"), "--directory", str(folder)]
    command += ["--target", target, "--result", str(result)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=os.environ.copy())
    row = json.loads(result.read_text())
    row.update(side=side, target=target, kind=kind, rep=rep, process_s=time.perf_counter() - start)
    row.update(circuit=work.name)
    row.update(images=args.images, images_per_s=args.images / row["simulation_s"])
    print(
        f"  {work.name:11s} rep {rep} {target:14s} {kind:4s} {side:5s}: "
        f"{row['wall_s']:6.1f} s wall, {row['cpu_s']:6.1f} s CPU (load {row['load_average']:.1f})",
        flush=True,
    )
    return row


def schedule(targets: list[str]) -> list[tuple[str, str, str]]:
    """``(target, kind, side)`` of one repetition, biofa and plain interleaved."""
    out = []
    for target in targets:
        for kind in ("cold", "warm") if target == "cpp_standalone" else ("cold",):
            out += [(target, kind, "biofa"), (target, kind, "plain")]
    return out


def summary(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """One line per (target, kind, side): medians (range) and per-repetition ratios to plain."""
    headers = [
        "target",
        "build",
        "side",
        "wall s",
        "CPU s",
        "Brian2 part s",
        "wall / plain",
        "CPU / plain",
        "Brian2 part / plain",
    ]
    lines = []
    keys = dict.fromkeys((r["target"], r["kind"]) for r in rows)
    for target, kind in keys:
        by = {
            s: [r for r in rows if (r["target"], r["kind"], r["side"]) == (target, kind, s)]
            for s in ("biofa", "plain")
        }
        for side, runs in by.items():
            cells = [target, kind, side]
            for key in ("wall_s", "cpu_s", "brian2_s"):
                cells.append(_spread([r[key] for r in runs]))
            for key in ("wall_s", "cpu_s", "brian2_s"):
                ratios = [r[key] / p[key] for r, p in zip(runs, by["plain"])]
                cells.append(_spread(ratios, "{:.2f}") if side == "biofa" else "1")
            lines.append(cells)
    return headers, lines


def phases(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Medians of each phase (s) per (target, kind, side)."""
    keys = [
        "plan_s",
        "objects_s",
        "codegen_s",
        "make_s",
        "simulation_s",
        "compare_s",
        "other_s",
    ]
    headers = [
        "target",
        "build",
        "side",
        "rate model + calibration",
        "Brian2 objects",
        "code generation",
        "make",
        "simulation",
        "comparison",
        "other",
        "images/s",
    ]
    lines = []
    for target, kind, side in dict.fromkeys((r["target"], r["kind"], r["side"]) for r in rows):
        runs = [r for r in rows if (r["target"], r["kind"], r["side"]) == (target, kind, side)]
        cells = [target, kind, side]
        cells += [_spread([r.get(k, 0.0) for r in runs]) if k in runs[0] else "-" for k in keys]
        lines.append([*cells, _spread([r["images_per_s"] for r in runs], "{:.0f}")])
        if "rerun_s" in runs[0]:
            rerun = [r["images"] / r["rerun_s"] for r in runs]
            lines.append(
                [
                    target,
                    "rerun",
                    side,
                    *["-"] * 4,
                    _spread([r["rerun_s"] for r in runs]),
                    "-",
                    "-",
                    _spread(rerun, "{:.0f}"),
                ]
            )
    return headers, lines


def _spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """``median (min-max)``, or the value alone for one repetition."""
    med = fmt.format(statistics.median(values))
    return (
        med if len(values) == 1 else f"{med} ({fmt.format(min(values))}-{fmt.format(max(values))})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="MNIST ImageFolder zip")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=0.1, help="seconds per image")
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--targets", default="cpp_standalone,numpy")
    parser.add_argument("--circuits", default=",".join(CIRCUITS), help="of: " + ", ".join(CIRCUITS))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: numpy only, 100 images, 1 rep, 100 training steps",
    )
    parser.add_argument("--out", default=str(RESULTS / "spiking_validation.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.copies, args.reps, args.targets = 100, 50, 1, "numpy"
    if not Path(args.data).exists():
        print(f"skipped: {args.data} not found (pass --data or set BIOFA_MNIST)")
        return 0
    if importlib.util.find_spec("brian2") is None:
        print("skipped: brian2 is not installed (pip install biofa[spiking])")
        return 0
    import brian2

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    data = load(args.data)
    rows, checks, accuracy = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.circuits.split(","):
            circuit(name)  # an unknown name: one line, before anything is trained
        for name in args.circuits.split(","):
            start = time.perf_counter()
            model = train(data, args.epochs, name, max_batches=100 if args.quick else None)
            with torch.no_grad():
                batches = data.test_batches(1000)
                hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches)
                accuracy[name] = hits / data.n_test
            print(
                f"{name}: trained in {time.perf_counter() - start:.0f} s, test accuracy "
                f"{accuracy[name]:.4f}"
            )
            work = Path(tmp) / name  # the circuit's folder, named after it (the worker's --circuit)
            work.mkdir()
            torch.save(model.state_dict(), work / "model.pt")
            export_plain(model, data, args.images, args.duration, args.copies, work / "plain.npz")
            window = args.duration - SETTLE
            for rep in range(1, args.reps + 1):
                for target, kind, side in schedule(args.targets.split(",")):
                    rows.append(worker(args, work, side, target, kind, rep))
                    if side == "plain":  # the two sides' spikes of this repetition
                        pair = [work / f"{target}-{s}-{kind}-{rep}.npz" for s in ("biofa", "plain")]
                        check = compare(*(dict(np.load(p)) for p in pair), window)
                        checks.append(
                            {"circuit": name, "target": target, "kind": kind, "rep": rep, **check}
                        )
    load_avg = os.getloadavg()
    print(
        f"\n{args.images} MNIST test images x {args.duration * 1e3:.0f} ms, {args.copies} copies "
        f"per run, {args.reps} interleaved repetition(s), brian2 {brian2.__version__}, load "
        f"average {load_avg[0]:.1f} on {os.cpu_count()} cores; median (min-max)"
    )
    for name in args.circuits.split(","):
        mine = [r for r in rows if r["circuit"] == name]
        print(f"\n{name} ({circuit(name).name})\n")
        print(table(*summary(mine)), "\n")
        print(table(*phases(mine)), "\n")
        print(fidelity_table(next(c for c in checks if c["circuit"] == name)))
    same = all(c["same"] for c in checks)
    print(f"\nplain and biofa spike alike (every repetition): {'yes' if same else 'NO'}")
    env = {
        **environment(torch.device("cpu")),
        "brian2": brian2.__version__,
        "load_average": load_avg,
        "cores": os.cpu_count(),
    }
    config = {k: getattr(args, k) for k in ("images", "duration", "copies", "epochs", "reps")}
    config.update(
        test_accuracy=accuracy, targets=args.targets, circuits=args.circuits, quick=args.quick
    )
    path = write_json(
        {
            "benchmark": "spiking_validation",
            "environment": env,
            "config": config,
            "rows": rows,
            "fidelity": checks,
        },
        Path(args.out),
    )
    print(f"wrote {path}")
    return 0 if same else 1


def fidelity_table(check: dict) -> str:
    """Spikes of both sides against the rate model (the first repetition)."""
    lines = []
    for pop, r in check["populations"].items():
        lines.append(
            [
                pop,
                f"{r['rate_corr_biofa']:.4f}",
                f"{r['rate_corr_plain']:.4f}",
                f"{r['mean_rate_biofa_hz']:.2f} / {r['mean_rate_plain_hz']:.2f}",
                f"{r['z']:+.1f}",
                f"{r['counts_corr']:.3f}",
            ]
        )
    a = check["readout"]
    lines.append(
        [
            "readout: agreement with rates",
            f"{a['agreement_biofa']:.3f}",
            f"{a['agreement_plain']:.3f}",
            f"accuracy {a['accuracy_biofa']:.3f} / {a['accuracy_plain']:.3f}",
            "-",
            f"{a['agreement_biofa_plain']:.3f} (potential {a['potential_corr']:.3f})",
        ]
    )
    if "error" in check:
        e = check["error"]
        lines.append(
            [
                "delivered error corr",
                f"{e['corr_biofa']:.4f}",
                f"{e['corr_plain']:.4f}",
                "-",
                "-",
                "-",
            ]
        )
    headers = [
        "population",
        "rate corr biofa",
        "rate corr plain",
        "mean Hz biofa / plain",
        "z",
        "biofa vs plain",
    ]
    where = f"{check['circuit']}, {check['target']}, {check['kind']}, rep {check['rep']}"
    return f"({where})\n" + table(headers, lines)


if __name__ == "__main__":
    raise SystemExit(main())
