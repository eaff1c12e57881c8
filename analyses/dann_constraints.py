"""Clamped vs parametrized signs in a Dale's ANN: the same network, the same batches, two ways to
keep its weights non-negative (``circuits/dann_mlp.py``, MNIST, the authors' settings).

* ``clamp`` (Cornford et al.'s code): ``W = s V``, plain SGD on ``V``, then ``V <- max(V, 0)``.
* ``parametrize`` (biofa's default): ``W = s |V|``, plain SGD on ``V``; nothing after the step.

Both start from identical weights and see identical batches. Every ``--every`` steps the script
prints the loss of the step's batch for both, the test accuracy of both (on ``--test`` test
images), the relative difference of their weights ``||W_p - W_c|| / ||W_c||`` (all
sign-constrained weights together) and the fraction of those weights at zero (clamp: exactly 0;
parametrize: below 1e-6). Writes JSON next to the figure-free table.

    python analyses/dann_constraints.py --data-root /path/to/zips [--steps 600] [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from biofa import compile
from biofa.data import load

ROOT = Path(__file__).resolve().parents[1]


def spec():
    s = importlib.util.spec_from_file_location("dann_mlp", ROOT / "circuits" / "dann_mlp.py")
    module = importlib.util.module_from_spec(s)
    s.loader.exec_module(module)
    return module


def constrained(model) -> torch.Tensor:
    """Every sign-constrained weight of ``model`` (and the divisive gains) as one vector."""
    with torch.no_grad():
        parts = [g.weight.reshape(-1).abs() for g in model.groups.values()]
        parts += [a.gains[n].abs().reshape(-1) for a in model.areas.values()
                  for n in getattr(a, "gains", {})]  # fmt: skip
    return torch.cat(parts)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="")
    ap.add_argument("--data", default="mnist_pixels")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--out", default="analyses/figures/dann_constraints.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    dann = spec()
    lr = args.lr or dann.LR["dann"]
    data = load(args.data, root=args.data_root)
    shape = data.input_shape
    models = {
        c: compile(dann.circuit("dann", constraint=c, inputs=shape[1] * shape[2]),
                   input_shape=shape, num_classes=data.num_classes, seed=args.seed)
        for c in ("clamp", "parametrize")
    }  # fmt: skip
    opts = {c: torch.optim.SGD(m.parameters(), lr=lr) for c, m in models.items()}
    test = list(data.subset(test=args.test).test_batches(500))
    rows, step = [], 0
    print("| step | loss clamp | loss param. | test clamp | test param. | rel. weight diff. "
          "| at 0: clamp | at 0: param. |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for epoch in range(1000):
        for x, y in data.train_batches(32, seed=args.seed, epoch=epoch):
            losses = {}
            for c, m in models.items():
                opts[c].zero_grad()
                loss = F.cross_entropy(m(x), y)
                loss.backward()
                opts[c].step()
                m.after_step(step + 1, args.seed)
                losses[c] = float(loss.detach())
            step += 1
            if step % args.every == 0 or step == args.steps:
                rows.append(record(step, losses, models, test))
            if step >= args.steps:
                break
        if step >= args.steps:
            break
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "lr": lr, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return rows


def record(step, losses, models, test) -> dict:
    acc = {}
    for c, m in models.items():
        m.eval()
        with torch.no_grad():
            hits = sum(int((m(x).argmax(1) == y).sum()) for x, y in test)
        m.train()
        acc[c] = hits / sum(len(y) for _, y in test)
    wc, wp = constrained(models["clamp"]), constrained(models["parametrize"])
    row = {
        "step": step, "loss": losses, "test_accuracy": acc,
        "relative_weight_difference": float((wp - wc).norm() / wc.norm()),
        "zero_clamp": float((wc == 0).double().mean()),
        "zero_parametrize": float((wp < 1e-6).double().mean()),
    }  # fmt: skip
    print(f"| {step} | {losses['clamp']:.4f} | {losses['parametrize']:.4f} | "
          f"{100 * acc['clamp']:.2f} | {100 * acc['parametrize']:.2f} | "
          f"{row['relative_weight_difference']:.4f} | {100 * row['zero_clamp']:.2f} % | "
          f"{100 * row['zero_parametrize']:.2f} % |", flush=True)  # fmt: skip
    return row


if __name__ == "__main__":
    main()
