"""DistributedDataParallel through ``fit``: 2 CPU processes on gloo vs one process, doubled batch.

Each worker is a fresh ``python`` process with the ``torchrun`` environment variables set by hand
(``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``PORT``); it captures the model ``fit`` builds (by
wrapping ``biofa.train.compile``) and saves its final state. The circuit has no batch norm (each
rank normalises its own shard, so BN would differ from one process by design) and mixes a fixed
(feedback alignment) and a learned (Kolen-Pollack) feedback pathway.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import xarray as xr

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parent.parent

WORKER = textwrap.dedent(
    """
    import sys, torch
    import biofa.train.steppers as T
    from biofa import Circuit, E, I, Train, conv, dense

    out, steps, batch, resume = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    torch.set_num_threads(1)
    built = []
    original = T.compile
    def capture(*args, **kwargs):
        model = original(*args, **kwargs)
        built.append(model)
        return model
    T.compile = capture

    c = Circuit("ddp")
    c.input("image")
    c.area("v1", E(6), I(2), pool="max")
    c.area("h", E(12), I(4))
    c.readout("out")
    c.connect("image", "v1", conv(3))
    c.connect("v1", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    c.feedback("out", "h", rule="kolen_pollack")
    c.feedback("h", "v1", rule="feedback_alignment")
    train = Train(batch_size=batch, max_steps=steps, optimizer="sgd", lr=0.05, momentum=0.9,
                  record_every=2, eval_every=4, checkpoint_every=2, device="cpu")
    __import__("biofa.train").train.fit(c, train, out=out + ".nc", resume=resume)
    rank = __import__("os").environ.get("RANK", "single")
    torch.save({k: v.detach().clone() for k, v in built[0].state_dict().items()},
               f"{out}.rank{rank}.pt")
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp: Path, name: str, steps: int, batch: int, world: int, resume: bool = False):
    script = tmp / "worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = "1"
    args = [sys.executable, str(script), str(tmp / name), str(steps), str(batch), str(int(resume))]
    if world == 1:
        subprocess.run(args, env=env, check=True, timeout=300, capture_output=True)
        return
    port = str(free_port())
    procs = []
    for rank in range(world):
        e = dict(env, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                 MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen(args, env=e, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT))
    try:
        for p in procs:
            out, _ = p.communicate(timeout=300)
            assert p.returncode == 0, out.decode(errors="replace")[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def test_two_ranks_equal_each_other_and_one_process_with_the_doubled_batch(tmp_path, monkeypatch):
    launch(tmp_path, "ddp", steps=4, batch=16, world=2)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(sys, "argv", ["worker", str(tmp_path / "one"), "4", "32", "0"])
    import biofa.train.steppers

    monkeypatch.setattr(biofa.train.steppers, "compile", biofa.train.steppers.compile)
    threads = torch.get_num_threads()
    try:
        exec(compile(WORKER, "worker", "exec"), {"__name__": "worker"})  # one process: this one
    finally:
        torch.set_num_threads(threads)
    r0, r1 = load(tmp_path / "ddp.rank0.pt"), load(tmp_path / "ddp.rank1.pt")
    single = load(tmp_path / "one.ranksingle.pt")
    assert set(r0) == set(r1) == set(single)
    feedback = [k for k in r0 if ".feedback." in k]
    assert any("kolen" not in k for k in feedback) and len(feedback) >= 2
    for key in r0:
        assert torch.equal(r0[key], r1[key]), f"{key} differs between ranks"
        torch.testing.assert_close(r0[key], single[key], rtol=1e-5, atol=1e-6, msg=key)
    # only rank 0 wrote the run; its recorded loss is the global batch's
    with xr.open_dataset(tmp_path / "ddp.nc") as a, xr.open_dataset(tmp_path / "one.nc") as b:
        torch.testing.assert_close(torch.tensor(a.loss.values), torch.tensor(b.loss.values),
                                   rtol=1e-5, atol=1e-6, equal_nan=True)
        assert a.attrs["status"] == "complete"


@pytest.mark.slow
def test_resume_under_ddp_continues_the_same_trajectory(tmp_path):
    launch(tmp_path, "full", steps=6, batch=8, world=2)
    launch(tmp_path, "cut", steps=4, batch=8, world=2)  # checkpoint at step 4 (every 2)
    assert (tmp_path / "cut.ckpt").exists(), "rank 0 writes the checkpoint"
    launch(tmp_path, "cut", steps=6, batch=8, world=2, resume=True)
    full, cut = load(tmp_path / "full.rank0.pt"), load(tmp_path / "cut.rank1.pt")
    for key in full:
        torch.testing.assert_close(cut[key], full[key], rtol=1e-6, atol=1e-7, msg=key)
