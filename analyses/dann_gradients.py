"""How large an error each rule delivers to the hidden areas of ``circuits/dann_rules.py``'s
networks, at initialisation: the norm of each hidden area's forward-weight gradient under the
rule divided by backprop's, on one batch of Fashion-MNIST (the same weights for every rule); the
sign-concordant rules also with ``norm="init"``.

    python analyses/dann_gradients.py --data-root DIR          # Markdown table
    python analyses/dann_gradients.py --data-root DIR --json gradients.json

A ratio near 1 is an error of backprop's size; ratios that grow layer by layer away from the
readout are an error that blows up on its way down, which no learning rate below divergence
can use. This explains the rows of docs/populations.md's rules table that stay at chance.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import torch
import torch.nn.functional as F

import biofa.data
from biofa import compile

SPEC = Path(__file__).resolve().parent.parent / "circuits" / "dann_rules.py"


def _spec():
    loader = importlib.util.spec_from_file_location("_biofa_dann_rules", SPEC)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


def hidden_gradient_norms(circuit, x, y) -> dict[str, float]:
    """Norm of the gradient of every group of forward weights that targets a hidden area
    (``h1``, ``h2``, ...; all its projections together) after one backward pass."""
    torch.manual_seed(0)
    model = compile(circuit, input_shape=tuple(x.shape[1:]), num_classes=10, seed=0)
    F.cross_entropy(model(x), y).backward()
    squares: dict[str, float] = {}
    for group in model.groups.values():
        target = group.spec.target
        if target.startswith("h"):
            for name, p in group.named_parameters():
                if "weight" in name and p.grad is not None:
                    squares[target] = squares.get(target, 0.0) + float(p.grad.norm()) ** 2
    return {area: total**0.5 for area, total in squares.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="", help="folder of fashion-mnist-png.zip")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    spec = _spec()
    data = biofa.data.load("fashion_mnist_pixels", root=args.data_root)
    x, y = next(iter(data.train_batches(args.batch, seed=0, epoch=0)))
    rows = [(rule, rule, "none") for rule in spec.RULES[1:]]
    rows += [(f"{rule}, norm=init", rule, "init") for rule in spec.SIGN_RULES]
    numbers: dict = {}
    lines = []
    for model in ("mlp", "column_ei", "dann"):
        reference = hidden_gradient_norms(spec.circuit(model, "backprop"), x, y)
        areas = sorted(reference)
        for row, rule, norm in rows:
            got = hidden_gradient_norms(spec.circuit(model, rule, sign_norm=norm), x, y)
            numbers[f"{row}/{model}"] = {a: got.get(a, 0.0) / reference[a] for a in areas}
        lines.append((model, areas))
    head = " | ".join(f"{m}: " + " / ".join(a) for m, a in lines)
    out = [f"| rule | {head} |", "|---|" + "---|" * len(lines)]
    for row, _, _ in rows:
        cells = [" / ".join(f"{numbers[f'{row}/{m}'][a]:.3g}" for a in areas)
                 for m, areas in lines]  # fmt: skip
        out.append(f"| {row} | " + " | ".join(cells) + " |")
    print("\n".join(out))
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=1) + "\n")
    return numbers


if __name__ == "__main__":
    main()
