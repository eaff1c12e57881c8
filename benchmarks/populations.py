"""Step time of population-level circuits: a Dale's ANN CNN compiled by biofa vs the same network
hand-written in PyTorch vs a column-E/I CNN of the same size (biofa's E/I areas, all to all).

One training step = forward, cross-entropy, backward, plain SGD update (and, for the clamped
versions, ``max(W, 0)`` on every sign-constrained tensor after it, as Cornford et al.'s code does).
The network is ``circuits/dann_cnn.py``: conv 3x3 areas v1 (``width`` E + ``width/4`` I channels)
and v2 (twice that), each with 2x2 max pooling, a dense area (``hidden`` E + ``hidden/4`` I) and
the readout (10 E + 1 I); the DANN's interneurons are local (3x3 ``W_IE`` from the E channels
below, 1x1 ``W_EI``, subtractive and divisive), the column-E/I net's I channels project onward.
Rows:

* ``torch_dann``: the DANN equations written out in plain PyTorch (``F.conv2d`` for ``W_EE``,
  ``W_IE`` and twice for the 1x1 ``W_EI``), weights clamped at 0 after each step: what a user would
  write by hand. Its forward equals biofa's to 1e-10 in fp64 (checked at start-up).
* ``biofa_dann``: the circuit, signs parametrized (``W = s|V|``, biofa's default).
* ``biofa_dann_clamp``: the circuit with ``constraint="clamp"`` (the authors' projection).
* ``biofa_column_ei``: the column-E/I circuit of the same channel counts.

Every row is timed in one process, repetitions interleaved; the ratio is the median over
repetitions of the within-repetition ratio to ``torch_dann``. CPU clock: this process's CPU time,
one intra-op thread (``--clock wall --threads N`` for wall time), as in ``step_time.py``.

    python benchmarks/populations.py                     # CPU: batch 64, width 32, MNIST-sized
    python benchmarks/populations.py --device cuda --batch 256
    python benchmarks/populations.py --quick             # smoke test

Writes ``benchmarks/results/populations-<cpu|cuda>.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

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

from biofa import compile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def spec():
    s = importlib.util.spec_from_file_location("dann_cnn", ROOT / "circuits" / "dann_cnn.py")
    module = importlib.util.module_from_spec(s)
    s.loader.exec_module(module)
    return module


class TorchDANN(nn.Module):
    """The DANN CNN of ``circuits/dann_cnn.py`` written out by hand (module docstring); its
    parameters are copied from a compiled circuit so both compute the same function."""

    def __init__(self, model):
        super().__init__()
        g, a = model.groups, model.areas
        self.layers = nn.ModuleList()
        for name, src in (("v1", "image"), ("v2", "v1:e"), ("it", "v2:e"), ("out", "it:e")):
            ext = g[f"{src}__to__{name}:e__and__{src}__to__{name}:i"].weight.detach()
            local = g[f"{name}:i__to__{name}:e"]
            n_e = local.weight.shape[0]
            layer = nn.Module()
            layer.wex = nn.Parameter(ext[:n_e].clone())
            layer.wix = nn.Parameter(ext[n_e:].clone())
            layer.wei = nn.Parameter(-local.weight.detach().clone())
            layer.alpha = nn.Parameter(local.log_gain.detach().clone())
            layer.g = nn.Parameter(a[name].gains["e"].detach().abs().clone())
            layer.b = nn.Parameter(a[name].biases["e"].detach().clone())
            self.layers.append(layer)

    @staticmethod
    def layer(x, p, conv: bool):
        if conv:
            z_e, z_i = F.conv2d(x, p.wex, padding=1), F.conv2d(x, p.wix, padding=1)
            inhibit = lambda r: F.conv2d(r, p.wei)  # noqa: E731
            shape = (1, -1, 1, 1)
        else:
            z_e, z_i = F.linear(x, p.wex), F.linear(x, p.wix)
            inhibit = lambda r: F.linear(r, p.wei)  # noqa: E731
            shape = (1, -1)
        gamma = inhibit(p.alpha.exp().view(shape) * z_i) + 1e-8
        return p.g.view(shape) * (z_e - inhibit(z_i)) / gamma + p.b.view(shape)

    def forward(self, x):
        v1, v2, it, out = self.layers
        h = F.max_pool2d(F.relu(self.layer(x, v1, True)), 2)
        h = F.max_pool2d(F.relu(self.layer(h, v2, True)), 2)
        h = F.relu(self.layer(h.flatten(1), it, False))
        return self.layer(h, out, False)

    @torch.no_grad()
    def clamp_(self):
        for p in self.layers:
            for t in (p.wex, p.wix, p.wei, p.g):
                t.clamp_(min=0)


class Step:
    def __init__(self, model, x, y, lr, after=None):
        self.model, self.x, self.y, self.after = model, x, y, after
        self.opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(self.x), self.y).backward()
        self.opt.step()
        if self.after is not None:
            self.after()


def check_equal(circuit_fn, shape) -> float:
    """Max |biofa - hand-written| of the forward in fp64 (it must be ~1e-12)."""
    model = compile(circuit_fn("dann"), input_shape=shape, num_classes=10, seed=0).double()
    ref = TorchDANN(model).double()
    x = torch.rand(4, *shape, dtype=torch.float64)
    with torch.no_grad():
        return float((model(x) - ref(x)).abs().max())


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--image", type=int, default=28)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("cpu", "wall"), default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.width, args.hidden, args.image = 4, 4, 8, 8
        args.reps, args.steps, args.warmup = 2, 1, 1
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    clock = args.clock or ("cpu" if device.type == "cpu" else "wall")
    dann_cnn = spec()

    def circuit(model: str, constraint: str = "parametrize"):
        return dann_cnn.circuit(model, width=args.width, hidden=args.hidden, image=args.image,
                                constraint=constraint)  # fmt: skip

    shape = (1, args.image, args.image)
    error = check_equal(circuit, shape)
    assert error < 1e-9, f"hand-written DANN differs from the circuit by {error}"
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, *shape, generator=gen).to(device)
    y = torch.randint(0, 10, (args.batch,), generator=gen).to(device)
    models = {
        "biofa_dann": circuit("dann"),
        "biofa_dann_clamp": circuit("dann", "clamp"),
        "biofa_column_ei": circuit("column_ei"),
    }
    compiled = {k: compile(c, input_shape=shape, num_classes=10, seed=0).to(device)
                for k, c in models.items()}  # fmt: skip
    rows = {"torch_dann": None}
    hand = TorchDANN(compiled["biofa_dann"]).to(device)
    rows["torch_dann"] = Step(hand, x, y, 0.01, hand.clamp_)
    for k, m in compiled.items():
        after = (lambda m=m: m.after_step(1, 0)) if m.steps_after else None
        rows[k] = Step(m, x, y, 0.01, after)
    params = {k: sum(p.numel() for p in r.model.parameters() if p.requires_grad)
              for k, r in rows.items()}  # fmt: skip
    times = interleaved(rows, device, reps=args.reps, steps=args.steps, warmup=args.warmup,
                        clock=clock, log=print)  # fmt: skip
    base = times["torch_dann"]
    out_rows, results = [], {}
    for k, t in times.items():
        ratio = paired_ratio(t, base)
        results[k] = {"ms": 1e3 * median(t), "ratio": ratio, "min_ratio": min(t) / min(base),
                      "parameters": params[k], "times": t}  # fmt: skip
        out_rows.append([k, f"{1e3 * median(t):.2f}", f"{ratio:.3f}", f"{min(t) / min(base):.3f}",
                         params[k], "<= 1.10" if k == "biofa_dann" else ""])  # fmt: skip
    print(table(["row", "ms/step", "ratio to torch_dann", "min ratio", "parameters", "goal"],
                out_rows))  # fmt: skip
    record = {
        "environment": environment(device),
        "clock": clock,
        "args": vars(args),
        "forward_difference_fp64": error,
        "results": results,
    }
    path = Path(args.out) if args.out else RESULTS / f"populations-{device.type}.json"
    write_json(record, path)
    print(f"wrote {path}")
    return record


if __name__ == "__main__":
    main()
