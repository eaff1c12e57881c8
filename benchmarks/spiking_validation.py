"""Spiking validation speed: a 784-(E 100 + I 25)-10 LIF circuit, 1,000 MNIST test images x 100 ms.

    python benchmarks/spiking_validation.py                       # both targets, 1,000 images
    python benchmarks/spiking_validation.py --targets numpy --images 200

For each Brian2 target it times ``biofa.spiking.validate`` end to end (rate model, calibration,
network construction, code generation, compilation, simulation, comparison): ``cold`` with an
empty standalone build cache, ``warm`` with the program already built for this structure (a new
validation, e.g. of another trained model: make finds nothing to compile), and ``rerun``: the
built program shown new images through ``run_args``, nothing regenerated. Prints a table and
writes JSON to ``benchmarks/results/spiking_validation.json``. Skips (exit 0) without the MNIST
zip (``--data``, default ``$BIOFA_MNIST`` or ``/work/shared/data/mnist-png.zip``) or Brian2.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from biofa import Circuit, E, I, compile, dense
from biofa.data import load

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import RESULTS, environment, table, write_json  # noqa: E402

DEFAULT_DATA = os.environ.get("BIOFA_MNIST", "/work/shared/data/mnist-png.zip")


def circuit() -> Circuit:
    c = Circuit("mnist_ei_spiking")
    c.input("image", kind="E")
    c.area("h", E(100), I(25))
    c.readout("out")
    c.connect("image", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    c.feedback_everywhere("feedback_alignment")
    return c


def train(data, epochs: int, seed: int = 0):
    torch.manual_seed(seed)
    model = compile(circuit(), input_shape=data.input_shape, num_classes=10, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for epoch in range(epochs):
        for x, y in data.train_batches(64, seed=seed, epoch=epoch):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def measure(model, data, target: str, images: int, duration: float, copies: int) -> list[dict]:
    from biofa.spiking import to_brian2, validate
    from biofa.spiking.rates import probe
    from biofa.spiking.translate import intensities

    rows = []

    def row(kind: str, wall: float, run: float, cpu: float, ds=None) -> None:
        rows.append(
            {
                "target": target,
                "kind": kind,
                "wall_s": wall,
                "simulation_s": run,
                "simulation_cpu_s": cpu,
                "images_per_s": images / run,
                **(
                    {}
                    if ds is None
                    else {
                        "rate_correlation": [round(float(v), 4) for v in ds.rate_correlation],
                        "class_agreement": float(ds.class_agreement),
                        "accuracy_rate_model": float(ds.accuracy_rate_model),
                        "accuracy_spiking": float(ds.accuracy_spiking),
                        "error_correlation": float(ds.error_correlation.max()),
                        "input_rate_hz": float(ds.attrs["input_rate"]),
                        "codegen_target": ds.attrs["codegen_target"],
                    }
                ),
            }
        )

    for kind in ("cold", "warm") if target == "cpp_standalone" else ("cold",):
        start = time.perf_counter()
        ds = validate(model, data, n_images=images, duration=duration, target=target, copies=copies)
        row(
            kind,
            time.perf_counter() - start,
            ds.attrs["run_seconds"],
            ds.attrs["simulation_cpu_seconds"],
            ds,
        )
    if target == "cpp_standalone":  # the built program, new images through run_args
        net = to_brian2(
            model,
            data,
            copies=copies,
            segments=-(-images // copies),
            duration=duration,
            target=target,
        )
        try:
            others = torch.randperm(data.n_test, generator=torch.Generator().manual_seed(1))
            raw, labels = data.test_examples(others[:images])
            trace = probe(model, data.normalize(raw), labels)
            start = time.perf_counter()
            net.run(intensities(raw).flatten(1).numpy(), trace.output_error)
            run = time.perf_counter() - start
        finally:
            net.close()
        row("rerun", run, run, net.cpu_seconds)
    return rows


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 1 else f"{value:.1f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="MNIST ImageFolder zip")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=0.1, help="seconds per image")
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--targets", default="cpp_standalone,numpy")
    parser.add_argument("--out", default=str(RESULTS / "spiking_validation.json"))
    args = parser.parse_args(argv)
    if not Path(args.data).exists():
        print(f"skipped: {args.data} not found (pass --data or set BIOFA_MNIST)")
        return 0
    if importlib.util.find_spec("brian2") is None:
        print("skipped: brian2 is not installed (pip install biofa[spiking])")
        return 0
    import brian2

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    data = load(args.data)
    start = time.perf_counter()
    model = train(data, args.epochs)
    with torch.no_grad():
        hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in data.test_batches(1000))
        accuracy = hits / data.n_test
    print(
        f"trained {args.epochs} epoch(s) in {time.perf_counter() - start:.0f} s: test accuracy "
        f"{accuracy:.4f}"
    )
    rows = []
    for target in args.targets.split(","):
        with tempfile.TemporaryDirectory() as cache:  # an empty build cache: a cold start
            os.environ["BIOFA_CACHE"] = cache
            rows += measure(model, data, target, args.images, args.duration, args.copies)
    load_avg = os.getloadavg()
    print(
        f"{args.images} MNIST test images x {args.duration * 1e3:.0f} ms, {args.copies} copies "
        f"per run, brian2 {brian2.__version__}, load average {load_avg[0]:.1f} on "
        f"{os.cpu_count()} cores"
    )
    columns = {
        "target": "target",
        "build": "kind",
        "wall (s)": "wall_s",
        "simulation (s)": "simulation_s",
        "simulation CPU (s)": "simulation_cpu_s",
        "images/s": "images_per_s",
        "rate corr": "rate_correlation",
        "agreement": "class_agreement",
        "error corr": "error_correlation",
    }
    print(table(list(columns), [[_cell(r.get(k, "")) for k in columns.values()] for r in rows]))
    env = {
        **environment(torch.device("cpu")),
        "brian2": brian2.__version__,
        "load_average": load_avg,
        "cores": os.cpu_count(),
    }
    config = {k: getattr(args, k) for k in ("images", "duration", "copies", "epochs")}
    config["test_accuracy"] = accuracy
    path = write_json(
        {"benchmark": "spiking_validation", "environment": env, "config": config, "rows": rows},
        Path(args.out),
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
