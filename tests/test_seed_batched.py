"""Many seeds as one batched computation (``fit(..., seeds=...)``, the seed-batched stepper)
against separate ``fit`` runs; checkpoints interchangeable between the two."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from small_circuits import small_ei_cnn

from biofa import Circuit, Train, compile
from biofa.cli.main import main
from biofa.kinds import Conv2dOp, DenseOp
from biofa.kinds.conv2d import SeedBatchedConv
from biofa.kinds.dense import SeedBatchedDense
from biofa.train import batching_refusal, fit, steppers


def small(rule: str = "feedback_alignment", batch_norm: bool = True) -> Circuit:
    return small_ei_cnn(rule, batch_norm)


TRAIN = Train(batch_size=64, max_steps=8, optimizer="adam", lr=1e-2, record_every=4,
              eval_every=8, schedule="cosine", device="cpu")


def variables(path: Path) -> dict[str, np.ndarray]:
    with xr.open_dataset(path) as ds:
        return {k: ds[k].values for k in ds.data_vars if k not in ("wall_time", "run_config")}


@pytest.mark.parametrize("rule", ["feedback_alignment", "kolen_pollack", "backprop"])
def test_batched_seeds_equal_separate_runs(tmp_path, rule):
    """FA (fixed feedback), KP (learned feedback, its own optimiser), backprop (native ops);
    E/I weights under Dale's law and batch norm with per-seed running statistics."""
    seeds = [0, 3]
    outs = [tmp_path / "batched" / f"seed-{s}.nc" for s in seeds]
    paths = fit(small(rule), TRAIN, out=outs, seeds=seeds)
    assert paths == outs
    for seed, path in zip(seeds, paths):
        ref = fit(small(rule), TRAIN.replace(seed=seed), out=tmp_path / f"ref-{seed}.nc")
        got, want = variables(path), variables(ref)
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=2e-4, atol=2e-5,
                                       err_msg=f"{rule} seed {seed}: {name}")
        with xr.open_dataset(path) as a, xr.open_dataset(ref) as b:
            assert set(a.attrs) == set(b.attrs) and a.attrs["status"] == "complete"
            assert a.seed.values.tolist() == [seed] and dict(a.sizes) == dict(b.sizes)


def test_seed_batched_ops_are_k_separate_ops():
    g = torch.Generator().manual_seed(0)
    k, n = 3, 5
    x = torch.randn(k, n, 4, 6, 6, generator=g)
    w, fb = torch.randn(k, 7, 4, 3, 3, generator=g), torch.randn(k, 7, 4, 3, 3, generator=g)
    b = torch.randn(k, 7, generator=g)
    op = Conv2dOp(2, 1)
    batched = SeedBatchedConv(op)
    y = batched.forward(x, w, b)
    dy = torch.randn_like(y)
    gx, gw, gb = batched.grads(dy, x, fb, (True, True, True))
    for i in range(k):
        torch.testing.assert_close(y[i], op.forward(x[i], w[i], b[i]), rtol=1e-4, atol=1e-5)
        rx, rw, rb = op.grads(dy[i].contiguous(), x[i], fb[i], (True, True, True))
        torch.testing.assert_close(gx[i], rx, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(gw[i], rw, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(gb[i], rb, rtol=1e-4, atol=1e-5)
    lin, blin = DenseOp(), SeedBatchedDense()
    x2, w2, b2 = (torch.randn(k, n, 6), torch.randn(k, 4, 6), torch.randn(k, 4))
    y2 = blin.forward(x2, w2, b2)
    gx2, gw2, gb2 = blin.grads(torch.ones_like(y2), x2, w2, (True, True, True))
    for i in range(k):
        torch.testing.assert_close(y2[i], lin.forward(x2[i], w2[i], b2[i]))
        for got, want in zip((gx2[i], gw2[i], gb2[i]),
                             lin.grads(torch.ones(n, 4), x2[i], w2[i], (True, True, True))):
            torch.testing.assert_close(got, want)


def test_per_seed_modules_are_views_of_the_stacked_weights(tmp_path, monkeypatch):
    built = []
    original = steppers.compile

    def capture(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(steppers, "compile", capture)
    outs = [tmp_path / "a.nc", tmp_path / "b.nc"]
    fit(small(), TRAIN.replace(max_steps=2, record_every=1), out=outs, seeds=[0, 1])
    fresh = compile(small(), input_shape=(1, 8, 8), num_classes=10, seed=1)
    moved = [n for n, p in built[1].named_parameters()
             if p.requires_grad and not torch.equal(p, dict(fresh.named_parameters())[n])]
    assert moved, "the per-seed module sees the trained (stacked) weights"


def test_unsupported_configurations_say_why(tmp_path):
    assert "direct delivery" in batching_refusal(small("direct_feedback_alignment"), TRAIN)
    assert "fp16" in batching_refusal(small(), TRAIN.replace(precision="fp16"))
    assert batching_refusal(small(), TRAIN) is None
    with pytest.raises(ValueError, match="distinct seeds"):
        fit(small(), TRAIN, out=["a.nc", "b.nc"], seeds=[1, 1])
    with pytest.raises(ValueError, match="out needs one entry per seed"):
        fit(small(), TRAIN, out=tmp_path / "one.nc", seeds=[1, 2])
    with pytest.raises(ValueError, match="cannot batch seeds of circuit 'small': precision='fp16'"):
        fit(small(), TRAIN.replace(precision="fp16"), out=["a.nc", "b.nc"], seeds=[1, 2])


def test_batched_checkpoints_resume_bit_identically_and_interchange_with_single_runs(
    tmp_path, monkeypatch
):
    """A batched run killed mid-way resumes from its per-run checkpoints to the same numbers, and
    a checkpoint written by the batched stepper resumes as a single run (same format)."""
    train = TRAIN.replace(max_steps=12, checkpoint_every=5, record_every=3, eval_every=6)
    seeds = [0, 3]
    ref = fit(small("kolen_pollack"), train, out=[tmp_path / f"ref{s}.nc" for s in seeds],
              seeds=seeds)  # fmt: skip
    outs = [tmp_path / f"run{s}.nc" for s in seeds]
    real = steppers.SeedBatchedStepper.step
    calls = {"n": 0}

    def dying(self, x, y):
        calls["n"] += 1
        if calls["n"] == 8:  # after step 7; the last checkpoint was at step 5
            raise KeyboardInterrupt
        return real(self, x, y)

    monkeypatch.setattr(steppers.SeedBatchedStepper, "step", dying)
    with pytest.raises(KeyboardInterrupt):
        fit(small("kolen_pollack"), train, out=outs, seeds=seeds)
    monkeypatch.setattr(steppers.SeedBatchedStepper, "step", real)
    assert all(o.with_suffix(".ckpt").exists() for o in outs)
    single = tmp_path / "single3.nc"
    single.with_suffix(".ckpt").write_bytes(outs[1].with_suffix(".ckpt").read_bytes())
    resumed = fit(small("kolen_pollack"), train, out=outs, seeds=seeds, resume=True)
    for got, want in zip(resumed, ref, strict=True):
        a, b = variables(got), variables(want)
        for name in b:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    alone = fit(small("kolen_pollack"), train.replace(seed=3), out=single, resume=True)
    a, b = variables(alone), variables(ref[1])
    for name in b:  # batched and single kernels round differently: close, not equal
        np.testing.assert_allclose(a[name], b[name], rtol=2e-4, atol=2e-5, err_msg=name)


#: a two-configuration sweep of two seeds each
BATCHED_SPEC = textwrap.dedent(
    """
    from biofa import Circuit, E, I, Train, dense, grid

    def circuit(rule: str = "feedback_alignment", width: int = 8):
        c = Circuit("mlp")
        c.input("image")
        c.area("h", E(width), I(2))
        c.readout("out")
        c.connect("image", "h", dense(flatten=True))
        c.connect("h", "out", dense())
        c.feedback_everywhere(rule)
        return c

    train = Train(max_steps=3, record_every=3, device="cpu")
    sweep = grid(width=[8, 12], seed=range(2))
    """)


def test_cli_batch_seeds_writes_one_file_per_point(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("spec.py").write_text(BATCHED_SPEC)
    assert main(["spec.py", "--sweep", "--batch-seeds", "--out", "out"]) == 0
    files = sorted(p.name for p in Path("out").glob("*.nc"))
    assert files == ["rule-feedback_alignment_seed-0_width-12.nc",
                     "rule-feedback_alignment_seed-0_width-8.nc",
                     "rule-feedback_alignment_seed-1_width-12.nc",
                     "rule-feedback_alignment_seed-1_width-8.nc"]
    with xr.open_dataset("out/rule-feedback_alignment_seed-1_width-12.nc") as ds:
        assert ds.width.values.tolist() == [12] and ds.seed.values.tolist() == [1]
        assert "spec_sha256" in ds.attrs and "command" in ds.attrs


def test_batch_seeds_with_jobs_runs_each_group_as_one_process(tmp_path, monkeypatch, capsys):
    """``--batch-seeds --jobs 2``: one child process per group of seeds (``--point I,J
    --batch-seeds``), writing what the in-process batched sweep writes."""
    monkeypatch.chdir(tmp_path)
    root = str(Path(__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", root)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the children's and this process's kernels alike
    Path("spec.py").write_text(BATCHED_SPEC)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["spec.py", "--sweep", "--batch-seeds", "--out", "here", "-q"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert main(["spec.py", "--sweep", "--batch-seeds", "--jobs", "2", "--out", "jobs"]) == 0
    wrote = sorted(capsys.readouterr().out.splitlines())
    names = sorted(p.stem for p in Path("here").glob("*.nc"))
    assert wrote == [f"wrote jobs/{n}.nc" for n in names] and len(names) == 4
    logs = sorted(p.name for p in Path("jobs").glob("*.log"))
    assert logs == ["rule-feedback_alignment_seed-0_width-12.log",
                    "rule-feedback_alignment_seed-0_width-8.log"]  # one process per group
    for log in logs:
        assert "2 seeds of" in (Path("jobs") / log).read_text()  # trained batched
    for name in names:
        with xr.open_dataset(f"here/{name}.nc") as a, xr.open_dataset(f"jobs/{name}.nc") as b:
            for var in ("loss", "test_accuracy", "feedback_angle"):
                np.testing.assert_allclose(a[var].values, b[var].values, rtol=1e-6, err_msg=var)
