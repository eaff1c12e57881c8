"""The fast paths behind the benchmarks (CPU): native backprop projections, the Function's
overhead fix, torch.compile without graph breaks, and the benchmark models and scripts."""

from __future__ import annotations

import collections
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from biofa import Circuit, E, I, Units, compile, conv, dense
from biofa.nn.function import ProjectionFunction
from biofa.rules import FeedbackRule

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import _models  # noqa: E402


class Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


class ViaFunction(FeedbackRule):
    """Backprop without the NativeBackward capability: takes the generic Function path."""

    name = "backprop_via_function_test"

    def effective_feedback(self, weight, fb):
        return weight


def cnn(rule: str = "backprop", ei: bool = False) -> Circuit:
    pops = (E(6), I(2)) if ei else (Units(8),)
    c = Circuit("cnn")
    c.input("image")
    c.area("v1", *pops, batch_norm=True, pool="max")
    c.area("v2", *pops, pool="global_avg")
    c.readout("out")
    c.connect("image", "v1", conv(3))
    c.connect("v1", "v2", conv(3))
    c.connect("v2", "out", dense())
    if rule != "backprop":
        c.feedback_everywhere(rule)
    return c


def one_step(model, x, y):
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_backprop_projections_are_native_ops_with_the_same_numbers():
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    fast = compile(cnn(), input_shape=(1, 8, 8), num_classes=10, seed=3)
    slow = compile(cnn(), input_shape=(1, 8, 8), num_classes=10, seed=3)
    for g in slow.groups.values():
        g.rule = ViaFunction()
    out = fast(x)
    assert "ProjectionFunction" not in type(out.grad_fn).__name__
    assert "ProjectionFunction" in type(slow(x).grad_fn).__name__
    a, b = one_step(fast, x, y), one_step(slow, x, y)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-7, msg=name)


def test_a_biofa_backprop_step_runs_the_ops_of_plain_pytorch():
    """Same aten ops per training step as the hand-written net (one kernel each on a GPU)."""
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    counts = {}
    for name, model in (("plain", _models.plain("vgg")),
                        ("biofa", _models.biofa_model("vgg", "backprop"))):
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        for _ in range(2):  # the second step has momentum buffers, as every later one
            with Count() as c:
                F.cross_entropy(model(x), y).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
        counts[name] = c.ops
    assert sum(counts["biofa"].values()) <= sum(counts["plain"].values())
    for op in ("aten.convolution", "aten.convolution_backward", "aten.native_batch_norm"):
        assert counts["biofa"][op] == counts["plain"][op], op


def test_function_signature_is_precomputed():
    """Function.apply binds arguments to forward's signature on every call; cached, not rebuilt."""
    assert isinstance(getattr(ProjectionFunction.forward, "__signature__", None),
                      inspect.Signature)


@pytest.mark.parametrize("rule", ["feedback_alignment", "kolen_pollack", "usf"])
def test_projection_rules_compile_without_graph_breaks(rule):
    """``torch.compile(fullgraph=True)`` traces ProjectionFunction (forward and backward) in one
    graph; ``aot_eager`` keeps the test fast (no code generation) and the numbers eager's."""
    torch._dynamo.reset()
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    eager = compile(cnn(rule, ei=True), input_shape=(1, 8, 8), num_classes=10, seed=1)
    traced = compile(cnn(rule, ei=True), input_shape=(1, 8, 8), num_classes=10, seed=1)
    compiled = torch.compile(traced, fullgraph=True, backend="aot_eager")
    F.cross_entropy(compiled(x), y).backward()
    F.cross_entropy(eager(x), y).backward()
    for (name, a), b in zip(eager.named_parameters(), traced.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("model", _models.MODELS)
def test_benchmark_twins_have_the_same_parameters(model):
    plain, circuit = _models.plain(model), _models.biofa_model(model, "backprop")
    size = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert size(plain) == size(circuit)
    if model != "resnet18":  # (11 M parameters: the count is enough)
        x = torch.randn(2, 3, 32, 32)
        assert plain(x).shape == circuit(x).shape == (2, 10)


def test_step_time_script_smoke(tmp_path):
    out = tmp_path / "st.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "step_time.py"), "--models", "vgg",
         "--rules", "feedback_alignment,dale_feedback", "--batch", "2", "--image-size", "8",
         "--reps", "1", "--warmup", "1", "--precisions", "fp32", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| feedback_alignment" in run.stdout and "skipped dale_feedback" in run.stdout
    import json

    table = json.loads(out.read_text())["tables"][0]
    assert [r["rule"] for r in table["rows"]][:3] == [
        "backprop (plain PyTorch)", "backprop", "backprop_via_function"]
    assert table["rows"][1]["ops_per_step"] == table["rows"][0]["ops_per_step"]


# ------------------------------------------------------------------------- streaming data
def image_folder(root: Path, n_train: int = 20, n_test: int = 6) -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for k, cls in enumerate(("cat", "dog")):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n // 2):
                a = (torch.rand(12, 12, 3, generator=g) * 255).to(torch.uint8).numpy()
                a[:, :, k] //= 3  # some class signal
                Image.fromarray(a).save(folder / f"{i:03d}.png")
    return root


def test_streamed_batches_equal_resident_batches(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOFA_CACHE", str(tmp_path / "cache"))
    from biofa import data as datasets

    root = image_folder(tmp_path / "imgs")
    resident = datasets.load(str(root))
    streamed = datasets.load(str(root), stream=True)
    assert isinstance(streamed, datasets.StreamingDataSet)
    assert isinstance(resident, datasets.InMemoryDataSet)
    assert streamed.input_shape == resident.input_shape == (3, 12, 12)
    assert streamed.train_y.tolist() == resident.train_y.tolist()
    import dataclasses

    # in-process reading, and the resident set's statistics (the streamed ones come from a sample)
    streamed = dataclasses.replace(streamed, workers=0, mean=resident.mean, std=resident.std)
    kw = {"seed": 3, "epoch": 1, "augment": True, "start_batch": 1}
    pairs = list(zip(resident.train_batches(6, **kw), streamed.train_batches(6, **kw)))
    assert len(pairs) == resident.steps_per_epoch(6) - 1
    for (xa, ya), (xb, yb) in pairs:
        torch.testing.assert_close(xb, xa)
        assert torch.equal(ya, yb)
    for (xa, ya), (xb, yb) in zip(resident.test_batches(4), streamed.test_batches(4)):
        torch.testing.assert_close(xb, xa)
        assert torch.equal(ya, yb)


def test_streamed_subsets_and_validation_splits_equal_resident_ones(tmp_path, monkeypatch):
    import dataclasses

    from biofa import data as datasets

    monkeypatch.setenv("BIOFA_CACHE", str(tmp_path / "cache"))
    root = image_folder(tmp_path / "imgs", n_train=40, n_test=12)
    resident = datasets.load(str(root))
    streamed = dataclasses.replace(datasets.load(str(root), stream=True), workers=0,
                                   mean=resident.mean, std=resident.std)
    pairs = [(resident.subset(train=14, test=5), streamed.subset(train=14, test=5)),
             *zip(resident.split_validation(9), streamed.split_validation(9))]
    for a, b in pairs:
        assert isinstance(b, datasets.StreamingDataSet) and b.workers == 0
        assert (a.n_train, a.n_test) == (b.n_train, b.n_test)
        assert torch.equal(a.train_labels, b.train_labels)
        kw = {"seed": 5, "epoch": 2, "augment": True}
        for (xa, ya), (xb, yb) in zip(a.train_batches(4, **kw), b.train_batches(4, **kw),
                                      strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
        for (xa, ya), (xb, yb) in zip(a.test_batches(4), b.test_batches(4), strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    train_part, validation = pairs[1][1], pairs[2][1]
    assert not set(train_part.train_files) & set(validation.test_files)
    assert set(train_part.train_files) | set(validation.test_files) == set(streamed.train_files)
    assert torch.bincount(validation.test_labels).tolist() in ([5, 4], [4, 5])


def test_fit_streams_an_image_folder_through_workers(tmp_path, monkeypatch):
    import xarray as xr

    from biofa import Train
    from biofa.train import fit

    monkeypatch.setenv("BIOFA_CACHE", str(tmp_path / "cache"))
    root = image_folder(tmp_path / "imgs")
    c = Circuit("tiny")
    c.input("image")
    c.area("v1", Units(4), batch_norm=True, pool="global_avg")
    c.readout("out")
    c.connect("image", "v1", conv(3))
    c.connect("v1", "out", dense())
    train = Train(data=str(root), stream=True, batch_size=8, epochs=2, augment=True,
                  record_every=2, device="cpu")
    path = fit(c, train, out=tmp_path / "run.nc")
    with xr.open_dataset(path) as ds:
        assert ds.attrs["status"] == "complete"
        assert np.isfinite(ds.test_accuracy.values[~np.isnan(ds.test_accuracy.values)]).all()
    assert not list((tmp_path / "cache").glob("*.pt")), "nothing decoded into the cache"
