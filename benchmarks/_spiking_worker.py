"""One timed run of the spiking benchmark in a fresh process, as a user's script runs.

    python benchmarks/_spiking_worker.py biofa --model M.pt --data MNIST.zip --target T \\
        --cache DIR --result R.json [--rerun]
    python benchmarks/_spiking_worker.py plain ARRAYS.npz --target T --directory DIR --result R.json

``biofa``: ``biofa.spiking.validate`` on the trained model (``--cache`` is ``$BIOFA_CACHE``: empty
for a cold build, the same folder again for a warm one); ``--rerun`` then shows the built program
other images through ``run_args``. ``plain``: :func:`_plain_brian2.simulate` on the exported arrays
(``--directory``: its standalone project folder). Imports and loading the inputs are not timed;
the result JSON has the wall time, CPU time (this process and its children: compiler, program)
and phases (:class:`Phases`), and the spike counts go to ``R.npz`` for the comparison.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def cpu_seconds() -> float:
    import resource

    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Phases:
    """Wall seconds spent in wrapped functions, accumulated by key (calls may nest)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner, attr: str, key: str) -> None:
        inner = getattr(owner, attr)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - start

        setattr(owner, attr, timed)


def _standalone_phases(phases: Phases, device) -> dict[str, float]:
    """make and the program's run from Brian2's own timers (``None`` where they did not run)."""
    timers = getattr(device, "timers", {}) or {}
    compile_ = timers.get("compile", {}) or {}
    return {
        "make_s": (compile_.get("make") or 0.0) + (compile_.get("clean") or 0.0),
        "program_s": timers.get("run_binary") or 0.0,
    }


def run_biofa(args) -> dict:
    import torch
    from spiking_validation import circuit

    # modules, not the functions of the same name that biofa.spiking re-exports
    network, translate, validate_module = (
        importlib.import_module(f"biofa.spiking.{m}") for m in ("network", "translate", "validate")
    )

    from biofa import compile
    from biofa.data import load
    from biofa.spiking import to_brian2, validate
    from biofa.spiking.rates import probe
    from biofa.spiking.translate import intensities

    os.environ["BIOFA_CACHE"] = args.cache
    torch.set_num_threads(1)
    data = load(args.data)
    model = compile(circuit(args.circuit), input_shape=data.input_shape, num_classes=10, seed=0)
    model.load_state_dict(torch.load(args.model, weights_only=True))
    model.eval()
    import brian2
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    phases = Phases()
    phases.wrap(translate, "plan_for", "plan_s")
    phases.wrap(network.SpikingNetwork, "__init__", "network_s")
    phases.wrap(network.SpikingNetwork, "run", "run_s")
    phases.wrap(network, "build_standalone", "build_s")
    phases.wrap(CPPStandaloneDevice, "build", "codegen_s")
    phases.wrap(CPPStandaloneDevice, "compile_source", "compile_s")
    phases.wrap(validate_module, "_dataset", "compare_s")
    options = {"n_images": args.images, "duration": args.duration, "copies": args.copies}
    cpu, start = cpu_seconds(), time.perf_counter()
    ds = validate(model, data, target=args.target, **options)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    p = dict(phases.seconds)
    device = brian2.get_device()
    out = {
        "wall_s": wall,
        "cpu_s": cpu,
        "codegen_target": ds.attrs["codegen_target"],
        "simulation_cpu_s": float(ds.attrs["simulation_cpu_seconds"]),
        "plan_s": p.get("plan_s", 0.0),
        # the Brian2 part: objects, code generation, compilation, simulation, reading the spikes
        "brian2_s": p.get("network_s", 0.0) + p.get("run_s", 0.0),
        "objects_s": p.get("network_s", 0.0) - p.get("build_s", 0.0),
        "codegen_s": p.get("codegen_s", 0.0),
        "make_s": p.get("compile_s", 0.0),
        "simulation_s": p.get("run_s", 0.0),
        "compare_s": p.get("compare_s", 0.0),
        "program_s": _standalone_phases(phases, device)["program_s"],
    }
    out["other_s"] = wall - out["plan_s"] - out["brian2_s"] - out["compare_s"]
    pops = ds.neuron_population.values
    np.savez(
        args.result.with_suffix(".npz"),
        **{f"counts/{pop}": ds.spike_count.values[:, pops == pop] for pop in np.unique(pops)},
        neuron_population=pops,
        potential=ds.readout_potential.values,
        activation=ds.rate_model_activation.values,
        logits=ds.logits_rate_model.values,
        label=ds.label.values,
        prediction=ds.prediction_spiking.values,
        **(  # a circuit translated forward only (population-level) has no error populations
            {
                "error_positive": ds.error_rate_positive.values,
                "error_negative": ds.error_rate_negative.values,
                "error_rate_model": ds.delivered_error_rate_model.values,
            }
            if "error_rate_positive" in ds
            else {}
        ),
    )
    out["validation"] = {
        "rate_correlation": [round(float(v), 4) for v in ds.rate_correlation],
        "class_agreement": float(ds.class_agreement),
        "accuracy_rate_model": float(ds.accuracy_rate_model),
        "accuracy_spiking": float(ds.accuracy_spiking),
        "error_correlation": (
            float(ds.error_correlation.max()) if "error_correlation" in ds else None
        ),
        "input_rate_hz": float(ds.attrs["input_rate"]),
    }
    if args.rerun and ds.attrs["codegen_target"] == "cpp_standalone":
        segments = -(-args.images // args.copies)
        net = to_brian2(
            model,
            data,
            copies=args.copies,
            segments=segments,
            duration=args.duration,
            target=args.target,
        )
        try:
            others = torch.randperm(data.n_test, generator=torch.Generator().manual_seed(1))
            raw, labels = data.test_examples(others[: args.images])
            trace = probe(model, data.normalize(raw), labels)
            start = time.perf_counter()
            net.run(intensities(raw).flatten(1).numpy(), trace.output_error)
            out["rerun_s"] = time.perf_counter() - start
            out["rerun_cpu_s"] = net.cpu_seconds
        finally:
            net.close()
    return out


def run_plain(args) -> dict:
    import _plain_brian2
    import brian2
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    arrays = dict(np.load(args.arrays))
    phases = Phases()
    phases.wrap(brian2.Network, "run", "run_s")
    phases.wrap(CPPStandaloneDevice, "build", "build_s")
    phases.wrap(_plain_brian2, "read", "read_s")
    cpu, start = cpu_seconds(), time.perf_counter()
    result = _plain_brian2.simulate(arrays, args.target, str(args.directory))
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    p = dict(phases.seconds)
    timers = _standalone_phases(phases, brian2.get_device())
    standalone = args.target == "cpp_standalone"
    out = {
        "wall_s": wall,
        "cpu_s": cpu,
        "codegen_target": args.target,
        "brian2_s": wall,
        "objects_s": wall - p.get("run_s", 0.0) - p.get("read_s", 0.0),
        "make_s": timers["make_s"] if standalone else 0.0,
        "program_s": timers["program_s"] if standalone else p.get("run_s", 0.0),
    }
    out["codegen_s"] = (
        (p.get("build_s", 0.0) - out["make_s"] - out["program_s"]) if standalone else 0.0
    )
    out["simulation_s"] = out["program_s"] + p.get("read_s", 0.0)
    np.savez(
        args.result.with_suffix(".npz"),
        **{f"counts/{k}": v for k, v in result["counts"].items()},
        potential=result["potential"],
    )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="which", required=True)
    b = sub.add_parser("biofa")
    b.add_argument("--model", required=True)
    b.add_argument("--data", required=True)
    b.add_argument("--cache", required=True)
    b.add_argument("--circuit", default="ei", help="spiking_validation.circuit's name")
    b.add_argument("--images", type=int, default=1000)
    b.add_argument("--duration", type=float, default=0.1)
    b.add_argument("--copies", type=int, default=100)
    b.add_argument("--rerun", action="store_true")
    p = sub.add_parser("plain")
    p.add_argument("arrays")
    p.add_argument("--directory", required=True, type=Path)
    for s in (b, p):
        s.add_argument("--target", default="cpp_standalone")
        s.add_argument("--result", required=True, type=Path)
    args = parser.parse_args(argv)
    out = run_biofa(args) if args.which == "biofa" else run_plain(args)
    out["load_average"] = os.getloadavg()[0]
    args.result.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
