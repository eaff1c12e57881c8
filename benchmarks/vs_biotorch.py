"""biofa vs BioTorch 0.0.16 (Sanfiz & Akrout 2021): step time and a short-run accuracy check.

Same network (ResNet-20, CIFAR shape 3x32x32, 10 classes; ``benchmarks/_models.py``), same
batch, same device, same optimiser (SGD, momentum 0.9), fp32. BioTorch converts the hand-written
plain PyTorch ResNet-20 with ``BioModule(model, mode=...)``; biofa builds it as a circuit with
the rule on every pathway. Mode pairs: ``backpropagation``/``backprop``, ``fa``/
``feedback_alignment``, ``usf``/``usf``, ``brsf``/``brsf``, ``frsf``/``frsf``,
``dfa``/``direct_feedback_alignment`` (pairs whose biofa rule is not registered are skipped).
biofa's sign rules run with ``norm="init"`` (feedback scaled by the initial weights' rms, as
BioTorch scales ``sign(W)`` by its initialisation's standard deviation).

Timing rows are interleaved in one process (see ``step_time.py``); the ratio is BioTorch's time
over biofa's (> 1: biofa faster). Accuracy: each pair trains ``--train-steps`` steps on the same
batches of a small CIFAR-10 subset (``../shared/data/cifar10-jpeg.zip`` relative to the
repository, through ``biofa.data.load``; the embedded digits upsampled to 3x32x32 when the zip is
absent) and is evaluated on the same test images: the two should land within noise of each other.

BioTorch is installed in this benchmark's own environment only (never a biofa dependency)::

    python -m venv --system-site-packages /tmp/bt
    /tmp/bt/bin/pip install --no-deps biotorch==0.0.16
    /tmp/bt/bin/python benchmarks/vs_biotorch.py                 # CPU: batch 128
    /tmp/bt/bin/python benchmarks/vs_biotorch.py --device cuda   # GPU: batch 512

(``--no-deps``: BioTorch pins old versions of torch and friends; the few modules it imports --
torch, torchvision, numpy -- come from the system site-packages.) Writes
``benchmarks/results/vs_biotorch-<cpu|cuda>.json``. Targets (issue 7): biofa >= 1.5x faster per
step on a GPU, not slower on a CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _models  # noqa: E402
from _timing import (  # noqa: E402
    RESULTS,
    environment,
    interleaved,
    median,
    paired_ratio,
    resolve_device,
    table,
    write_json,
)

import biofa.data as datasets  # noqa: E402
import biofa.rules  # noqa: E402
from biofa.train import Train, build_optimizers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAIRS = {  # BioTorch mode -> (biofa rule, options)
    "backpropagation": ("backprop", {}),
    "fa": ("feedback_alignment", {}),
    "usf": ("usf", {"norm": "init"}),
    "brsf": ("brsf", {"norm": "init"}),
    "frsf": ("frsf", {"norm": "init"}),
    "dfa": ("direct_feedback_alignment", {}),
}


def biotorch_model(mode: str, device, fmt):
    from biotorch.module.biomodule import BioModule

    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints a report
        model = BioModule(_models.plain("resnet20"), mode=mode,
                          output_dim=10 if mode == "dfa" else None)
    return model.to(device, memory_format=fmt)


class Row:
    """A model, its optimisers and how to call it (BioTorch's DFA wants targets and the loss)."""

    def __init__(self, model, optimizers, dfa_targets: bool):
        self.model, self.optimizers, self.dfa = model, optimizers, dfa_targets

    def logits(self, x, y):
        if self.dfa:
            return self.model(x, targets=y, loss_function=F.cross_entropy)
        return self.model(x)

    def step(self, x, y) -> None:
        loss = F.cross_entropy(self.logits(x, y), y)
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in self.optimizers:
            o.step()

    @torch.no_grad()
    def accuracy(self, x, y, batch: int) -> float:
        self.model.eval()
        hits = sum(int((self.model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                   for i in range(0, len(y), batch))
        self.model.train()
        return hits / len(y)


def build(pairs, device, fmt, lr, log):
    rows, skipped = {}, {}
    torch.manual_seed(0)
    plain = _models.plain("resnet20").to(device, memory_format=fmt)
    rows["plain PyTorch"] = Row(plain, [torch.optim.SGD(plain.parameters(), lr=lr, momentum=0.9)],
                                False)
    train = Train(optimizer="sgd", lr=lr, momentum=0.9)
    available = set(biofa.rules.available())
    for mode, (rule, options) in pairs.items():
        if rule not in available:
            skipped[mode] = f"biofa rule {rule!r} is not registered"
            log(f"  skip {mode}: {skipped[mode]}")
            continue
        try:
            bt = biotorch_model(mode, device, fmt)
            bt_row = Row(bt, [torch.optim.SGD([p for p in bt.parameters() if p.requires_grad],
                                              lr=lr, momentum=0.9)], mode == "dfa")
            bf = _models.biofa_model("resnet20", rule, **options).to(device, memory_format=fmt)
            bf_row = Row(bf, build_optimizers(bf, train), False)
        except Exception as exc:  # noqa: BLE001 - report and go on
            skipped[mode] = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            log(f"  skip {mode}: {skipped[mode]}")
            continue
        rows[f"biofa {rule}"] = bf_row
        rows[f"biotorch {mode}"] = bt_row
    return rows, skipped


def accuracy_data(device, train_n: int, test_n: int, log):
    """A class-balanced-enough subset: CIFAR-10 (JPEG copy) or digits upsampled to 3x32x32."""
    zip_path = ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"
    if zip_path.exists():
        log(f"accuracy data: {train_n} train / {test_n} test images of {zip_path}")
        ds = datasets.load(str(zip_path))
        name = "cifar10-jpeg subset"
    else:
        log("accuracy data: digits upsampled to 3x32x32 (cifar10-jpeg.zip not found)")
        ds = datasets.load("digits")
        name = "digits 3x32x32"
    g = torch.Generator().manual_seed(0)
    tr = torch.randperm(ds.n_train, generator=g)[:train_n]
    te = torch.randperm(ds.n_test, generator=g)[:test_n]
    (train_x, train_y), (test_x, test_y) = ds.train_examples(tr), ds.test_examples(te)

    def prep(x):
        x = ds.normalize(x)
        if x.shape[1] == 1:
            x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
            x = x.expand(-1, 3, -1, -1).contiguous()
        return x.to(device)

    return prep(train_x), train_y.to(device), prep(test_x), test_y.to(device), name


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, help="default 128 on a CPU, 512 on a GPU")
    p.add_argument("--modes", default=",".join(PAIRS), help="BioTorch modes (comma list)")
    p.add_argument("--reps", type=int, help="interleaved repetitions (default 5 CPU, 20 GPU)")
    p.add_argument("--steps", type=int, help="steps per repetition (default 1 CPU, 10 GPU)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default 1; see step_time)")
    p.add_argument("--train-steps", type=int, default=60, help="0: skip the accuracy check")
    p.add_argument("--train-images", type=int, default=4096)
    p.add_argument("--test-images", type=int, default=1000)
    p.add_argument("--out", help="JSON path")
    args = p.parse_args(argv)
    try:
        import biotorch  # noqa: F401
    except ImportError:
        print("BioTorch is not installed in this environment; see this script's docstring "
              "(python -m venv --system-site-packages /tmp/bt && /tmp/bt/bin/pip install "
              "--no-deps biotorch==0.0.16). Skipped.", file=sys.stderr)
        return 0
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    if not gpu:
        torch.set_num_threads(args.threads or 1)
    batch = args.batch or (512 if gpu else 128)
    reps, steps = args.reps or (20 if gpu else 5), args.steps or (10 if gpu else 1)
    fmt = torch.channels_last if gpu else torch.contiguous_format
    clock = "wall" if gpu else "cpu"

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    env = environment(device)
    log(f"{env['device']}, torch {env['torch']}, {env['date']}")
    pairs = {m: PAIRS[m] for m in args.modes.split(",")}
    rows, skipped = build(pairs, device, fmt, args.lr, log)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(device, memory_format=fmt)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    times = interleaved({n: (lambda r=r: r.step(x, y)) for n, r in rows.items()}, device,
                        reps=reps, steps=steps, warmup=args.warmup, log=log, clock=clock)
    base = times["plain PyTorch"]
    result_rows, printed = [], []
    for mode, (rule, _) in pairs.items():
        a, b = f"biofa {rule}", f"biotorch {mode}"
        if a not in times:
            continue
        speedup = paired_ratio(times[b], times[a])
        target = 1.5 if gpu else 1.0
        result_rows.append({"biotorch_mode": mode, "biofa_rule": rule,
                            "biofa_ms": 1e3 * median(times[a]),
                            "biotorch_ms": 1e3 * median(times[b]),
                            "biofa_vs_plain": paired_ratio(times[a], base),
                            "biotorch_vs_plain": paired_ratio(times[b], base),
                            "speedup": speedup, "target": target, "ok": speedup >= target,
                            "biofa_all_ms": [1e3 * t for t in times[a]],
                            "biotorch_all_ms": [1e3 * t for t in times[b]]})
        r = result_rows[-1]
        printed.append([f"{mode} / {rule}", f"{r['biofa_ms']:.1f}", f"{r['biotorch_ms']:.1f}",
                        f"{r['biofa_vs_plain']:.3f}", f"{r['biotorch_vs_plain']:.3f}",
                        f"{speedup:.2f}", f">= {target:.1f}", "yes" if r["ok"] else "NO"])
    print(f"### ResNet-20, batch {batch}, fp32{', channels_last' if gpu else ''}, "
          f"{env['device']}, {clock} time (median of {reps} interleaved reps x {steps} steps)\n")
    print(table(["BioTorch / biofa", "biofa ms", "BioTorch ms", "biofa/plain", "BioTorch/plain",
                 "BioTorch time / biofa time", "target", "met"], printed))
    print(f"\nplain PyTorch: {1e3 * median(base):.1f} ms/step")
    for mode, why in skipped.items():
        print(f"skipped {mode}: {why}")

    accuracy = []
    if args.train_steps:
        xtr, ytr, xte, yte, data_name = accuracy_data(device, args.train_images,
                                                       args.test_images, log)
        fresh, _ = build(pairs, device, fmt, args.lr, log)
        n = len(ytr)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(1)).to(device)
        acc = {}
        for name, row in fresh.items():
            for s in range(args.train_steps):
                idx = order[(torch.arange(batch, device=device) + s * batch) % n]
                row.step(xtr[idx], ytr[idx])
            acc[name] = row.accuracy(xte, yte, 500)
            log(f"  {name}: test accuracy {acc[name]:.3f} after {args.train_steps} steps")
        printed = []
        for mode, (rule, _) in pairs.items():
            a, b = f"biofa {rule}", f"biotorch {mode}"
            if a in acc:
                accuracy.append({"biotorch_mode": mode, "biofa_rule": rule,
                                 "biofa": acc[a], "biotorch": acc[b]})
                printed.append([f"{mode} / {rule}", f"{acc[a]:.3f}", f"{acc[b]:.3f}",
                                f"{acc[a] - acc[b]:+.3f}"])
        se = (0.25 / args.test_images) ** 0.5
        print(f"\n### Test accuracy after {args.train_steps} steps of batch {batch} on "
              f"{data_name} ({n} train / {len(yte)} test images; plain PyTorch "
              f"{acc['plain PyTorch']:.3f}; binomial s.e. of one accuracy <= {se:.3f})\n")
        print(table(["BioTorch / biofa", "biofa", "BioTorch", "difference"], printed))
    out = Path(args.out) if args.out else RESULTS / f"vs_biotorch-{device.type}.json"
    write_json({"benchmark": "vs_biotorch", **env, "argv": sys.argv[1:], "batch": batch,
                "clock": clock, "threads": torch.get_num_threads(), "reps": reps,
                "steps": steps, "plain_ms": 1e3 * median(base), "rows": result_rows,
                "skipped": skipped, "accuracy": accuracy,
                "train_steps": args.train_steps}, out)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
