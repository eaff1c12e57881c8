"""Training-step time: hand-written PyTorch (backprop) vs the same net as a biofa circuit, per rule.

One training step = forward, cross-entropy, backward, SGD (momentum 0.9) update (plus the rule's
``after_step`` hook, as :func:`biofa.train.fit` runs it). Models (``benchmarks/_models.py``):
``vgg`` (4 conv-BN-ReLU areas), ``vgg_ei`` (the same with E/I populations under Dale's law; its
plain twin is unconstrained), ``resnet20`` and ``resnet18`` (CIFAR variants), all on 3x32x32
inputs with 10 classes. Every row of one table is timed in the same process with repetitions
interleaved (rep 1: plain, rule 1, rule 2, ...; rep 2: ...), so the machine's drift hits all rows
alike; the ratio is the median over repetitions of ``t_rule / t_plain`` within a repetition.

Columns: median ms per step, ratio to plain (median over repetitions of the within-repetition
ratio; the verdict uses it), min ratio (fastest repetition over plain's fastest: the estimator
least hurt by other jobs), images/s, memory ratio, aten ops per step (counted
with a ``TorchDispatchMode`` over one step: on a GPU each is about one kernel launch, so it is the
host-overhead proxy that does not depend on the machine's load), target and verdict.
Clock: on CUDA wall time (synchronised); on a CPU, by default, this process's CPU time with one
intra-op thread (``--clock wall --threads N`` for wall time): the machines this was developed on
are shared, and CPU time excludes the waits for a core that make wall time swing by 2x there.

Memory: on CUDA ``torch.cuda.max_memory_allocated`` over the timed steps (parameters, gradients,
optimiser state and activations); on a CPU there is no allocator statistic, so the column is the
bytes saved for backward in one step (unique storages, through ``saved_tensors_hooks``): the
activation memory, which is what differs between implementations.

Run (writes ``benchmarks/results/step_time-<cpu|cuda>.json``)::

    python benchmarks/step_time.py                       # CPU: batch 128, vgg, vgg_ei, resnet20
    python benchmarks/step_time.py --device cuda         # GPU: batch 512, all four models,
                                                         #      fp32 + bf16, channels_last
    python benchmarks/step_time.py --quick               # smoke test: tiny batch, all rules
    python benchmarks/step_time.py --models resnet20 --rules backprop,feedback_alignment --reps 5
    python benchmarks/step_time.py --batch 2 --image-size 8 --out host.json   # host overhead only

Rules that cannot be built on a model (e.g. ``dale_feedback`` needs E/I upper areas) are skipped
with the reason printed and stored.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _models  # noqa: E402
from _timing import (  # noqa: E402
    RESULTS,
    autocast,
    environment,
    interleaved,
    median,
    paired_ratio,
    resolve_device,
    table,
    write_json,
)

import biofa.rules  # noqa: E402
from biofa import compile as biofa_compile  # noqa: E402
from biofa.rules import FeedbackRule  # noqa: E402
from biofa.train import Train, build_optimizers  # noqa: E402


@biofa.rules.register
class BackpropViaFunction(FeedbackRule):
    """Backprop through the generic ProjectionFunction (benchmark only: biofa before its fast path).

    ``biofa.nn.function.project`` runs NativeBackward rules (backprop) as native ops; this rule
    has the same feedback (``W``) without that capability, so it takes the custom-Function path
    every rule took before (the before/after row).
    """

    name = "backprop_via_function"

    def effective_feedback(self, weight, fb):
        return weight

#: GPU targets of issue 7: fixed/sign-based rules and Kolen-Pollack within 5 % of plain PyTorch,
#: rules that do more work by design (PFA's extra matrix, EKDAA's target differences, the weight
#: mirror's noise phase) within 25 %. Every ratio within 10 % on a CPU.
SLOW_BY_DESIGN = {"product_fa", "ekdaa", "weight_mirror"}


def target(rule: str, device: torch.device) -> float:
    if device.type != "cuda":
        return 1.10
    return 1.25 if rule in SLOW_BY_DESIGN else 1.05


class OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.by_op: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        self.by_op[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


class Runner:
    """One row: a model, its optimisers and a fixed batch; ``step()`` is one training step."""

    def __init__(self, model, optimizers, x, y, precision, device, hook=None):
        self.model, self.optimizers, self.x, self.y = model, optimizers, x, y
        self.precision, self.device, self.hook, self.steps = precision, device, hook, 0

    def loss(self):
        with autocast(self.device, self.precision):
            logits = self.model(self.x)
        return F.cross_entropy(logits.float(), self.y)

    def step(self) -> None:
        loss = self.loss()
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in self.optimizers:
            o.step()
        self.steps += 1
        if self.hook is not None:
            self.hook(self.steps, 0)

    def count_ops(self) -> int:
        with OpCounter() as counter:
            self.step()
        return counter.count

    def saved_bytes(self) -> int:
        """Bytes of the unique storages autograd saves for backward in one step, parameters and
        buffers (which exist anyway) left out."""
        state = [*self.model.parameters(), *self.model.buffers()]
        held = {t.untyped_storage().data_ptr() for t in state}
        seen: dict[int, int] = {}

        def pack(t):
            try:
                s = t.untyped_storage()
                if s.data_ptr() not in held:
                    seen[s.data_ptr()] = s.nbytes()
            except (RuntimeError, NotImplementedError):  # tensors without storage
                pass
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = self.loss()
        loss.backward()
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)
        return sum(seen.values())


def build_rows(model_name, rules, args, device, x, y, precision, log):
    """``{name: Runner}``: plain first, then one per rule; and ``{rule: reason}`` skipped."""
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    rows, skipped = {}, {}
    torch.manual_seed(0)
    plain = _models.plain(model_name).to(device, memory_format=fmt)
    opt = torch.optim.SGD(plain.parameters(), lr=args.lr, momentum=0.9)
    rows["plain"] = Runner(plain, [opt], x, y, precision, device)
    train = Train(optimizer="sgd", lr=args.lr, momentum=0.9)
    shape = tuple(x.shape[1:])
    for rule in rules:
        try:
            circuit = _models.circuit(model_name, rule)
            model = biofa_compile(circuit, input_shape=shape, num_classes=10, seed=0)
            model = model.to(device, memory_format=fmt)
            hook = getattr(model, "after_step", None)
            runner = Runner(model, build_optimizers(model, train), x, y, precision, device, hook)
            runner.step()  # fails here if the rule cannot run on this model
        except Exception as exc:  # noqa: BLE001 - a benchmark reports and goes on
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            skipped[rule] = reason
            log(f"  skip {rule}: {reason}")
            continue
        rows[rule] = runner
    return rows, skipped


def run_table(model_name, precision, rules, args, device, log) -> dict:
    batch, size = args.batch, args.image_size
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).to(device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    log(f"{model_name} {precision} batch {batch} ({len(rules)} rules) on {device}")
    rows, skipped = build_rows(model_name, rules, args, device, x, y, precision, log)
    ops = {name: r.count_ops() for name, r in rows.items()}
    memory: dict[str, int] = {}
    if device.type == "cpu":
        memory = {name: r.saved_bytes() for name, r in rows.items()}

    def start(name):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def end(name):
        if device.type == "cuda":
            memory[name] = max(memory.get(name, 0), torch.cuda.max_memory_allocated(device))

    times = interleaved({n: r.step for n, r in rows.items()}, device, reps=args.reps,
                        steps=args.steps, warmup=args.warmup, on_row_start=start, on_row_end=end,
                        log=log, clock=args.clock)
    base = times["plain"]
    out_rows = []
    for name, ts in times.items():
        ratio = paired_ratio(ts, base)
        rule = "backprop (plain PyTorch)" if name == "plain" else name
        limit = None if name == "plain" else target(name, device)
        out_rows.append({
            "impl": "plain" if name == "plain" else "biofa",
            "rule": rule,
            "median_ms": 1e3 * median(ts),
            "times_ms": [1e3 * t for t in ts],
            "ratio": ratio,
            "ratio_of_medians": median(ts) / median(base),
            "ratio_of_minimums": min(ts) / min(base),
            "images_per_s": batch / median(ts),
            "memory_bytes": memory.get(name),
            "memory_ratio": memory[name] / memory["plain"] if name in memory else None,
            "ops_per_step": ops[name],
            "ops_ratio": ops[name] / ops["plain"],
            "target": limit,
            "ok": None if limit is None else bool(ratio <= limit),
        })
    return {
        "model": model_name,
        "precision": precision,
        "batch": batch,
        "image_size": size,
        "channels_last": bool(args.channels_last),
        "memory_kind": "max_memory_allocated" if device.type == "cuda" else "saved_for_backward",
        "reps": args.reps,
        "clock": args.clock,
        "threads": torch.get_num_threads(),
        "steps_per_rep": args.steps,
        "rows": out_rows,
        "skipped": skipped,
    }


def format_table(t: dict) -> str:
    head = (f"### {t['model']}, {t['precision']}, batch {t['batch']}"
            f"{', channels_last' if t['channels_last'] else ''}, {t['threads']} thread(s), "
            f"{t['clock']} time (median of {t['reps']} interleaved reps x {t['steps_per_rep']} "
            "steps)")
    mem = "mem ratio" if t["memory_kind"] == "max_memory_allocated" else "saved-act ratio"
    rows = []
    for r in t["rows"]:
        rows.append([
            r["rule"], f"{r['median_ms']:.1f}", f"{r['ratio']:.3f}",
            f"{r['ratio_of_minimums']:.3f}", f"{r['images_per_s']:.0f}",
            "-" if r["memory_ratio"] is None else f"{r['memory_ratio']:.3f}",
            f"{r['ops_per_step']} ({r['ops_ratio']:.2f}x)",
            "" if r["target"] is None else f"<= {r['target']:.2f}",
            "" if r["ok"] is None else ("yes" if r["ok"] else "NO"),
        ])
    body = table(["rule", "ms/step", "ratio", "min ratio", "img/s", mem, "aten ops/step",
                  "target", "met"], rows)
    skipped = "".join(f"\nskipped {k}: {v}" for k, v in t["skipped"].items())
    return f"{head}\n\n{body}{skipped}\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--models", help=f"comma list of {', '.join(_models.MODELS)}")
    p.add_argument("--rules", help="comma list (default: every registered rule)")
    p.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32, bf16")
    p.add_argument("--batch", type=int, help="default 128 on a CPU, 512 on a GPU")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--reps", type=int, help="interleaved repetitions (default 5 CPU, 20 GPU)")
    p.add_argument("--steps", type=int, help="steps per repetition (default 1 CPU, 10 GPU)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                   help="auto: on for CUDA, off for a CPU")
    p.add_argument("--clock", choices=("auto", "wall", "cpu"), default="auto",
                   help="auto: wall time on CUDA, this process's CPU time on a CPU")
    p.add_argument("--threads", type=int, default=0,
                   help="intra-op threads (default: 1 on a CPU, so CPU time is the work done; "
                        "torch's default on CUDA)")
    p.add_argument("--quick", action="store_true", help="smoke test: batch 8, 2 reps, fp32")
    p.add_argument("--out", help="JSON path (default benchmarks/results/step_time-<device>.json)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    if args.quick:
        args.batch = args.batch or 8
        args.reps = args.reps or 2
        args.steps = args.steps or 1
        args.warmup = 1
        args.precisions = "fp32" if args.precisions == "fp32,bf16" else args.precisions
        args.models = args.models or "vgg,resnet20"
    args.batch = args.batch or (512 if gpu else 128)
    args.reps = args.reps or (20 if gpu else 5)
    args.steps = args.steps or (10 if gpu else 1)
    args.channels_last = gpu if args.channels_last == "auto" else args.channels_last == "on"
    if args.clock == "auto":
        args.clock = "wall" if gpu else "cpu"
    if args.threads or not gpu:
        torch.set_num_threads(args.threads or 1)
    models = (args.models or ("vgg,vgg_ei,resnet20,resnet18" if gpu else "vgg,vgg_ei,resnet20"))
    models = models.split(",")
    rules = args.rules.split(",") if args.rules else biofa.rules.available()
    first = ["backprop", BackpropViaFunction.name]  # biofa's backprop, after and before the fix
    rules = first + [r for r in rules if r not in first]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    env = environment(device)
    log(f"{env['device']}, torch {env['torch']}, {env['date']}")
    suffix = "-quick" if args.quick else ""
    out = Path(args.out) if args.out else RESULTS / f"step_time-{device.type}{suffix}.json"
    tables = []
    for model_name in models:
        for precision in args.precisions.split(","):
            t = run_table(model_name, precision, rules, args, device, log)
            tables.append(t)
            print(format_table(t), flush=True)
            # after every table, so a long run that is cut short keeps what it measured
            write_json({"benchmark": "step_time", **env, "argv": sys.argv[1:], "tables": tables},
                       out)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
