"""The training loop: one loop for one run, a data-parallel run, or many seeds batched.

:func:`fit` trains a circuit as a :class:`~biofa.train.config.Train` says: the data loaded and
placed, a :class:`~biofa.train.steppers.Stepper` built (one model, optionally under DDP, or ``K``
seeds as one vmapped computation), then epochs of steps. Every ``record_every`` steps each run's
loss, accuracy, learning rate and wall time, its probes and the shadow pass's angles
(:mod:`biofa.measure`) go to its :class:`~biofa.measure.record.Recorder`; at the end (or when the
loss stops being finite, or a signal stops the run: :mod:`biofa.train.interrupt`) each run's
netCDF file is written, and a completed run's final model (:mod:`biofa.nn.saved`). Between
record steps nothing waits for the device: running sums stay on it and the NaN guard is a
device-side "first bad step" (on a CPU the loss is checked every step).

Determinism: the seed derives every generator (weights and feedback by name in
:mod:`biofa.nn.seeds`, data order and augmentation by ``(seed, epoch, batch)`` in
:mod:`biofa.data`), so CPU runs are bit-reproducible and a resumed run continues the same
trajectory.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from biofa.circuit import Circuit
from biofa.data import load
from biofa.measure.probes import projection_metrics, run_metrics
from biofa.measure.shadow import shadow_metrics
from biofa.nn import saved
from biofa.nn.declaration import fingerprint
from biofa.nn.seeds import derive_seed
from biofa.train import checkpoint, datasets, distributed
from biofa.train.config import Train
from biofa.train.divergence import Diverged, diverged_message, exploded
from biofa.train.interrupt import Interrupted, StopRequests
from biofa.train.optim import lr_factor, set_weight_decay
from biofa.train.preflight import check_batch, check_memory
from biofa.train.provenance import run_recorder
from biofa.train.resume import load_states, plain, restore
from biofa.train.steppers import SeedBatchedStepper, SingleStepper, autocast, batching_refusal

__all__ = ["Diverged", "Interrupted", "Run", "fit", "resolve_device"]

log = logging.getLogger(__name__)


@dataclass
class Run:
    """One run of a :func:`fit` call: its seed, output file and recorded identity."""

    seed: int
    out: Path
    coords: dict | None = None
    run_config: dict | None = None
    attrs: dict | None = None

    @property
    def checkpoint(self) -> Path:
        return self.out.with_suffix(".ckpt")

    @property
    def model(self) -> Path:
        return saved.model_path(self.out)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "Train.device='cuda' but no CUDA device is available (use 'auto' or 'cpu')"
        )
    return torch.device(name)


def fit(
    circuit: Circuit,
    train: Train,
    *,
    out: str | Path | Sequence[str | Path],
    coords: dict | Sequence[dict] | None = None,
    run_config: dict | Sequence[dict] | None = None,
    attrs: dict | Sequence[dict] | None = None,
    resume: bool = False,
    seeds: Sequence[int] | None = None,
    save_model: bool = True,
) -> Path | list[Path]:
    """Train ``circuit`` as ``train`` says and write each run's netCDF file.

    Parameters
    ----------
    circuit, train
        What to train and how.
    out
        The run's file; with ``seeds``, one file per seed.
    coords, run_config, attrs
        Length-1 coordinates of every variable (default: ``rule`` and ``seed``), the configuration
        stored as JSON, and global attributes; with ``seeds``, one per seed (``attrs`` may also be
        one dict for all).
    resume
        Continue each run from its checkpoint (``out`` with suffix ``.ckpt``) when it exists
        (otherwise start at step 0, said in the log). The checkpoint's configuration, spec hash
        and circuit declaration must equal this run's but for :data:`biofa.train.resume.RESUMABLE`
        fields, whose change is recorded in the ``resumed`` attribute.
    seeds
        Train these seeds of the same circuit and ``train`` together, as one batched computation
        (``train.seed`` is replaced by each); see :class:`~biofa.train.steppers.SeedBatchedStepper`.
    save_model
        Keep each completed run's final model as ``<run>.model.pt`` beside its file
        (:func:`biofa.load_model` reads it).

    Returns
    -------
    Path or list of Path
        The file written (one per seed with ``seeds``).

    Raises
    ------
    Diverged
        When the loss became NaN/inf (after writing what was recorded; with ``seeds``, after every
        other seed trained to the end).
    Interrupted
        On SIGINT or SIGTERM, after the step in progress: every run's checkpoint and its record so
        far (status ``interrupted: ...``) are written first (:mod:`biofa.train.interrupt`).
    ValueError
        Before training, in one line: a circuit too large for the device's memory, a checkpoint
        that cannot be read or belongs to another configuration.
    """
    runs = _runs(train, out, coords, run_config, attrs, seeds)
    for run in runs:
        run.out.parent.mkdir(parents=True, exist_ok=True)
    trains = [train.replace(seed=run.seed) for run in runs]
    device = resolve_device(train.device)
    if seeds is not None and (why := batching_refusal(circuit, train)) is not None:
        raise ValueError(f"cannot batch seeds of circuit {circuit.name!r}: {why}")
    ddp = distributed.setup(device) if seeds is None else None  # under torchrun with 2+ ranks
    if ddp is not None:
        device = ddp.device
    main = distributed.is_main(ddp)  # rank 0 records, evaluates, writes, logs
    torch.manual_seed(derive_seed(runs[0].seed, "torch"))
    loaded_data = load(train.data, root=train.data_root, stream=train.stream)
    data, validation = datasets.select(loaded_data, train).place(device)  # validation: or None
    if main:
        check_batch(train, data)
    check_memory(circuit, train, data, device, runs=len(runs))
    identities = [
        {
            "config": plain(r.run_config or {"circuit": circuit.name, "train": asdict(t)}),
            "spec_sha256": (r.attrs or {}).get("spec_sha256", ""),
            "declaration": fingerprint(circuit),
        }
        for r, t in zip(runs, trains, strict=True)
    ]
    loaded = load_states([r.checkpoint for r in runs], identities, device) if resume else None
    states, resumed_line = loaded if loaded else (None, "")
    history = [*states[0].get("resumed", []), resumed_line] if states else []
    if seeds is None:
        stepper = SingleStepper(circuit, train, data, device, ddp)
    else:
        stepper = SeedBatchedStepper(circuit, train, data, device, [r.seed for r in runs])
    models, optimizers, k_runs = stepper.models, stepper.optimizers, len(runs)
    per_epoch = data.steps_per_epoch(stepper.global_batch, drop_last=stepper.drop_last)
    total = train.epochs * per_epoch
    if train.max_steps:
        total = min(total, train.max_steps)
    schedulers = [
        torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(train, s, total, per_epoch))
        for o in optimizers
    ]
    extra = {"resumed": "\n".join(history)} if history else {}
    recorders: list = [
        run_recorder(m, circuit, t, device, r.coords, r.run_config, {**(r.attrs or {}), **extra})
        for m, t, r in zip(models, trains, runs, strict=True)
    ]
    if not main:
        recorders = [distributed.NullRecorder(r) for r in recorders]
    zeros = torch.zeros(k_runs, device=device, dtype=torch.float64)
    loss_sum, correct, seen = zeros.clone(), zeros.clone(), 0
    bad_step = torch.full((k_runs,), -1, device=device, dtype=torch.long)
    step, elapsed, summary = 0, 0.0, {}
    if states:
        step, elapsed, summary, loss_sum, correct, seen, bad_step = restore(
            states, runs[0].checkpoint, stepper, schedulers, recorders, total
        )
        log.info("resumed %s from step %d", runs[0].out.name, step)

    def save_checkpoints() -> None:
        for k, (run, rec) in enumerate(zip(runs, recorders, strict=True)):
            checkpoint.save({
                "identity": identities[k],
                "resumed": history,
                **stepper.run_state(k),
                "schedulers": [s.state_dict() for s in schedulers],
                "recorder": rec.state_dict(),
                "step": step,
                "elapsed": elapsed + time.perf_counter() - t0,
                "running": (loss_sum[k], correct[k], seen, bad_step[k]),
                "summary": summary,
            }, run.checkpoint)  # fmt: skip

    live, diverged, paths = [True] * k_runs, [], [None] * k_runs
    if main:  # a model file beside a run is that run's final model: an earlier one goes now
        for run in runs:
            run.model.unlink(missing_ok=True)

    def give_up(k: int, at: int, epoch: int, why: str) -> None:
        live[k] = False
        paths[k] = recorders[k].write(runs[k].out, status=f"diverged: {why}")
        diverged.append((k, at, epoch, why))

    def check_finite(epoch: int) -> None:
        if ddp is not None:  # every rank stops at the same step
            distributed.all_reduce(bad_step, "max")
        for k, bad in enumerate(bad_step.tolist()):
            if live[k] and bad >= 0:
                give_up(k, bad, epoch, f"loss not finite at step {bad}")

    def stop_now(at_check: bool) -> bool:
        """Whether to stop after this step for a signal (every rank agrees under DDP)."""
        if ddp is None:
            return stop.signum is not None
        if not at_check:  # ranks agree where they already agree on the NaN guard
            return False
        flag = distributed.all_reduce(torch.tensor([stop.signum or 0], device=device), "max")
        stop.signum = int(flag.item()) or stop.signum
        return stop.signum is not None

    t0 = time.perf_counter()
    desc = runs[0].out.stem if k_runs == 1 else f"{k_runs} seeds"
    bar = tqdm(total=total, initial=step, disable=None if main else True, desc=desc, unit="step",
               leave=True)  # fmt: skip
    interrupted = False
    with StopRequests() as stop, logging_redirect_tqdm(), bar:
        while step < total and any(live) and not interrupted:
            epoch = step // per_epoch
            epoch_t0 = time.perf_counter()
            set_weight_decay(optimizers, train, epoch)
            for x, y in stepper.batches(epoch, step % per_epoch):
                losses, hits, n = stepper.step(x, y)
                for s in schedulers:
                    s.step()
                step += 1
                stepper.after_step(step, [r.seed for r in runs])  # e.g. a weight-mirror phase
                bad_step = torch.where(
                    (bad_step < 0) & ~torch.isfinite(losses), torch.full_like(bad_step, step),
                    bad_step,
                )  # fmt: skip
                loss_sum += losses.double() * n
                correct += hits
                seen += n
                bar.update(1)
                last = step == total or step % per_epoch == 0
                at_check = device.type == "cpu" or step % train.record_every == 0 or last
                if at_check:
                    check_finite(epoch)
                    if not any(live) or (k_runs == 1 and not live[0]):
                        break
                if step % train.record_every == 0 or last:
                    if ddp is not None:  # loss and accuracy of the global batch
                        distributed.all_reduce(loss_sum)
                        distributed.all_reduce(correct)
                        seen *= ddp.world_size
                    lr = schedulers[0].get_last_lr()[0] if schedulers else train.lr
                    wall = elapsed + time.perf_counter() - t0
                    for k in (k for k in range(k_runs) if live[k] and main):
                        values = {"loss": loss_sum[k] / seen, "train_accuracy": correct[k] / seen,
                                  "learning_rate": lr, "wall_time": wall}  # fmt: skip
                        xk, yk = stepper.run_batch(x, y, k)
                        values.update(run_metrics(models[k], xk, yk))
                        probes = projection_metrics(models[k])
                        probes.update(  # error/update angles: a shadow backward on this batch
                            shadow_metrics(models[k], xk, yk,
                                           autocast=lambda: autocast(train, device),
                                           loss_scale=stepper.scaler.get_scale())
                        )  # fmt: skip
                        recorders[k].record(step, epoch, values, probes)
                    summary.update(loss=float(loss_sum.mean() / seen),
                                   train=float(correct.mean() / seen))  # fmt: skip
                    for k, (mean, hit) in enumerate(zip((loss_sum / seen).tolist(),
                                                         (correct / seen).tolist())):  # fmt: skip
                        if live[k] and exploded(train, mean, hit, data.num_classes):
                            give_up(k, step, epoch, f"mean training loss {mean:.3g} > "
                                    f"Train.diverge_loss={train.diverge_loss:g} and training "
                                    f"accuracy {hit:.1%} near chance at step {step}")  # fmt: skip
                    bar.set_postfix(loss=f"{summary['loss']:.4g}", refresh=False)
                    loss_sum, correct, seen = zeros.clone(), zeros.clone(), 0
                    if not any(live) or (k_runs == 1 and not live[0]):
                        break
                if (
                    (train.eval_every and step % train.eval_every == 0)
                    or (not train.eval_every and step % per_epoch == 0)
                    or step == total
                ):
                    # with a validation split the test set is measured once, after the last step
                    for name, source in (("validation", validation), ("test", data)):
                        if source is None or (name == "test" and validation and step < total):
                            continue
                        accuracy = stepper.evaluate(source, max(train.batch_size, 256))
                        for k in (k for k in range(k_runs) if live[k]):
                            recorders[k].record(step, epoch, {f"{name}_accuracy": accuracy[k]})
                        summary[name] = float(accuracy.mean())
                if train.checkpoint_every and step % train.checkpoint_every == 0 and main:
                    save_checkpoints()
                if step >= total:
                    break
                if stop_now(at_check):
                    interrupted = True
                    break
            if main and any(live) and not interrupted:
                _log_epoch(summary, epoch, train.epochs, time.perf_counter() - epoch_t0)
        if interrupted:  # still ignoring further signals: the files are written whole
            if main:
                save_checkpoints()
            name = signal.Signals(stop.signum).name
            for k, run in enumerate(runs):
                if live[k]:
                    status = f"interrupted: {name} at step {step} of {total}"
                    paths[k] = recorders[k].write(run.out, status=status)
            raise Interrupted(stop.signum, step, total, [p for p in paths if p is not None])
    for k, run in enumerate(runs):
        if live[k]:
            paths[k] = recorders[k].write(run.out, status="complete")
            if main and save_model:
                saved.save_model(models[k], run.model, seed=run.seed,
                                 held_norms=train.hold_weight_norms,
                                 data=_data_info(data), run=_run_info(run, step))  # fmt: skip
            if main and run.checkpoint.exists() and not train.checkpoint_every:
                run.checkpoint.unlink()
    if diverged:
        raise Diverged(diverged_message(diverged, runs))
    return paths[0] if seeds is None else paths


def _data_info(data) -> dict:
    return {"name": data.name, "classes": [str(c) for c in data.classes],
            "mean": list(data.mean), "std": list(data.std)}  # fmt: skip


def _run_info(run: Run, step: int) -> dict:
    sha = (run.attrs or {}).get("spec_sha256", "")
    return {"file": run.out.name, "step": step, "coords": run.coords or {},
            "config": run.run_config or {}, "spec_sha256": sha}  # fmt: skip


def _runs(train, out, coords, run_config, attrs, seeds) -> list[Run]:
    if seeds is None:
        return [Run(train.seed, Path(out), coords, run_config, attrs)]
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"fit(seeds={seeds}): give distinct seeds, at least one")
    if isinstance(attrs, dict):
        attrs = [attrs] * len(seeds)
    per_seed = {"out": out, "coords": coords, "run_config": run_config, "attrs": attrs}
    for label, seq in per_seed.items():
        if seq is not None and (isinstance(seq, (str, Path, dict)) or len(seq) != len(seeds)):
            raise ValueError(f"fit(seeds=...): {label} needs one entry per seed ({len(seeds)})")
    return [
        Run(s, Path(out[k]), *(None if per_seed[n] is None else per_seed[n][k]
                               for n in ("coords", "run_config", "attrs")))  # fmt: skip
        for k, s in enumerate(seeds)
    ]  # fmt: skip


def _log_epoch(summary: dict[str, float], epoch: int, epochs: int, seconds: float) -> None:
    parts = [f"epoch {epoch + 1}/{epochs}"]
    if "loss" in summary:
        parts.append(f"loss {summary['loss']:.4f}  train {100 * summary['train']:.1f}%")
    for name in ("validation", "test"):
        if name in summary:
            parts.append(f"{name} {100 * summary[name]:.1f}%")
    parts.append(f"{seconds:.1f} s")
    log.info("  ".join(parts))
