r"""Many seeds of one small circuit in one process, as one batched computation.

:func:`fit_seeds` trains ``K`` seeds of the same circuit and :class:`~biofa.train.config.Train`
together: the ``K`` compiled circuits' parameters and buffers are stacked along a new leading
dimension, and one training step is

.. math::
    \ell = \sum_{k=1}^{K} \mathrm{CE}\big(f(x_k; \theta_k), y_k\big), \qquad
    \theta_k \leftarrow \mathrm{opt}(\theta_k, \nabla_{\theta_k} \ell)
    = \mathrm{opt}(\theta_k, \nabla_{\theta_k} \mathrm{CE}_k),

with ``f`` evaluated for all ``k`` at once by ``torch.func.vmap`` of
``torch.func.functional_call`` (a batched matrix product per dense projection, a grouped
convolution per conv one). The sum couples nothing: seed ``k``'s gradient is its own loss's, and
SGD/Adam update every entry on its own, so each seed follows the trajectory its own
:func:`~biofa.train.fit` run would (up to float rounding of batched vs unbatched kernels). Every
seed keeps its own weights, feedback tensors (rule ``init_feedback`` draws from the seed), data
order and augmentation (``train_batches(seed=seed_k)``), batch-norm statistics and running sums.
The custom autograd Function of :mod:`biofa.nn.function` runs under ``vmap`` through its
generated vmap rule, so the rules' backward passes are batched too.

Outputs: one netCDF file per seed, written by its own :class:`~biofa.measure.record.Recorder` with
the
schema of :func:`~biofa.train.fit` (same variables, coordinates and attributes). Metrics that
need a per-seed network (feedback angles, the shadow error/update angles) are computed at record
steps on per-seed :class:`~biofa.nn.compiler.CompiledCircuit` modules whose parameters are *views*
into the stacked tensors (no copies). ``wall_time`` is the shared wall clock of the batch.

Limits: direct rules (the readout error travels through a Python object between two autograd
Functions, which ``vmap`` cannot carry), rules that redefine how the error crosses a
nonlinearity, ``precision="fp16"`` (one gradient scaler would couple the seeds),
``Train.compile`` and checkpoints are not supported here; :func:`supported` says why, and the
command line (``--batch-seeds``) then runs such points one by one.

Command line: ``python -m biofa.run SPEC --sweep --batch-seeds`` groups the sweep points that
differ only in ``seed`` and trains each group with :func:`fit_seeds`.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, vmap
from tqdm.auto import tqdm

from biofa import rules
from biofa.circuit import Circuit
from biofa.data import load
from biofa.measure.probes import projection_metrics
from biofa.measure.record import run_recorder
from biofa.measure.shadow import shadow_metrics
from biofa.nn import compile
from biofa.nn.seed_batched import StackedParameters, stack
from biofa.nn.seeds import derive_seed
from biofa.rules import AfterStep, AreaRule
from biofa.train import loop as train_mod
from biofa.train.config import Train

__all__ = ["fit_seeds", "group_points", "run_grouped", "supported"]

log = logging.getLogger(__name__)


def supported(circuit: Circuit, train: Train) -> str | None:
    """``None`` if :func:`fit_seeds` can batch this circuit and configuration, else why not."""
    if train.precision == "fp16":
        return "precision='fp16' (one gradient scaler would couple the seeds; use bf16 or fp32)"
    if train.compile:
        return "Train.compile=True"
    if train.checkpoint_every:
        return "checkpoints (Train.checkpoint_every > 0)"
    if getattr(train, "stream", False):
        return "Train.stream=True (each seed would read its own batches from disk)"
    if getattr(train, "normalize_grads", False):
        return "Train.normalize_grads=True (per-projection norms of the stacked gradients)"
    for rule in rules.used_by(circuit):
        if issubclass(rules.get(rule), AreaRule):
            return (
                f"rule {rule!r} acts on areas (direct delivery or its own nonlinearity crossing: "
                "the readout error travels outside autograd, which vmap cannot)"
            )
    return None


def fit_seeds(
    circuit: Circuit,
    train: Train,
    seeds: Sequence[int],
    out_dir: str | Path,
    *,
    run_names: Sequence[str] | None = None,
    coords: Sequence[dict] | None = None,
    run_configs: Sequence[dict] | None = None,
    attrs: dict | Sequence[dict] | None = None,
) -> list[Path]:
    """Train ``circuit`` with ``train`` once per seed in ``seeds``, all seeds batched.

    Parameters
    ----------
    circuit, train
        As for :func:`biofa.train.fit`; ``train.seed`` is replaced by each seed.
    seeds
        Distinct seeds, one run each.
    out_dir
        Where the files go: ``out_dir / f"{run_names[k]}.nc"`` (default name ``seed-<s>``).
    run_names, coords, run_configs
        Per seed (same length as ``seeds``): file stem, length-1 coordinates (default ``rule`` and
        ``seed``) and the configuration stored as JSON, as :func:`biofa.train.fit` takes them.
    attrs
        Global attributes: one dict for every file, or one per seed.

    Returns
    -------
    list of Path
        One netCDF file per seed, in the order of ``seeds``.

    Raises
    ------
    ValueError
        Duplicate seeds, mismatched per-seed lists, or a configuration :func:`supported` rejects.
    biofa.train.Diverged
        After every file is written, if the loss of any seed became NaN/inf (that seed's file
        keeps what was recorded before, with a ``diverged`` status; the others train on).
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("fit_seeds: give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"fit_seeds: seeds {seeds} contain duplicates")
    why = supported(circuit, train)
    if why is not None:
        raise ValueError(f"fit_seeds cannot batch seeds of circuit {circuit.name!r}: {why}")
    K = len(seeds)
    per_seed = (
        ("run_names", run_names),
        ("coords", coords),
        ("run_configs", run_configs),
        ("attrs", attrs if isinstance(attrs, Sequence) else None),
    )
    for label, seq in per_seed:
        if seq is not None and len(seq) != K:
            raise ValueError(f"fit_seeds: {label} has {len(seq)} entries for {K} seeds")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(run_names) if run_names is not None else [f"seed-{s}" for s in seeds]
    outs = [out_dir / f"{n}.nc" for n in names]
    trains = [train.replace(seed=s) for s in seeds]

    device = train_mod.resolve_device(train.device)
    torch.manual_seed(derive_seed(seeds[0], "torch"))
    data = load(train.data, root=train.data_root).place(device)
    models = [
        compile(circuit, input_shape=data.input_shape, num_classes=data.num_classes, seed=s).to(
            device
        )
        for s in seeds
    ]
    if getattr(train, "hold_weight_norms", False):
        from biofa.nn.norms import hold_weight_norms

        for m in models:
            hold_weight_norms(m)
    base = copy.deepcopy(models[0])  # the module functional_call runs (its own tensors unused)
    params, buffers = stack(models)
    optimizers = train_mod.build_optimizers(StackedParameters(models[0], params), train)
    per_epoch = data.steps_per_epoch(train.batch_size)
    total = train.epochs * per_epoch
    if train.max_steps:
        total = min(total, train.max_steps)
    schedulers = [
        torch.optim.lr_scheduler.LambdaLR(
            o, lambda s: train_mod.lr_factor(train, s, total, per_epoch)
        )
        for o in optimizers
    ]
    recorders = [
        run_recorder(
            m,
            circuit,
            t,
            device,
            coords[k] if coords is not None else None,
            run_configs[k] if run_configs is not None else None,
            attrs[k] if isinstance(attrs, Sequence) else attrs,
        )
        for k, (m, t) in enumerate(zip(models, trains))
    ]
    hooks = any(isinstance(g.rule, AfterStep) for g in models[0].groups.values())

    def loss_and_logits(p, b, x, y):
        logits = functional_call(base, (p, b), (x,))
        return F.cross_entropy(logits.float(), y), logits

    batched_step = vmap(loss_and_logits)
    autocast = partial(train_mod._autocast, train, device)  # for the shadow passes
    batched_eval = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))

    def evaluate() -> Tensor:
        base.eval()
        hits = torch.zeros(K, device=device, dtype=torch.long)
        with torch.no_grad(), train_mod._autocast(train, device):
            for x, y in data.test_batches(max(train.batch_size, 256)):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                hits += (batched_eval(params, buffers, x).argmax(-1) == y).sum(-1)
        base.train()
        return hits.double() / data.n_test

    zeros = torch.zeros(K, device=device, dtype=torch.float64)
    loss_sum, correct, seen = zeros.clone(), zeros.clone(), 0
    bad_step = torch.full((K,), -1, device=device, dtype=torch.long)
    live = [True] * K
    paths: list[Path | None] = [None] * K
    diverged: list[str] = []
    summary: dict[str, float] = {}
    step, t0 = 0, time.perf_counter()
    base.train()
    for m in models:
        m.train()
    bar = tqdm(total=total, disable=None, desc=f"{K} seeds", unit="step", leave=False)

    def check(epoch: int) -> None:
        bad = bad_step.tolist()
        for k in range(K):
            if live[k] and bad[k] >= 0:
                live[k] = False
                status = f"diverged: loss not finite at step {bad[k]}"
                paths[k] = recorders[k].write(outs[k], status=status)
                diverged.append(f"seed {seeds[k]} at step {bad[k]} ({outs[k]})")

    while step < total and any(live):
        epoch = step // per_epoch
        epoch_t0 = time.perf_counter()
        train_mod._set_weight_decay(optimizers, train, epoch)
        streams = [
            data.train_batches(train.batch_size, seed=s, epoch=epoch,
                               augment=train.augment, start_batch=step % per_epoch)
            for s in seeds
        ]
        for batch in zip(*streams):
            x = torch.stack([b[0] for b in batch]).to(device, non_blocking=True)
            y = torch.stack([b[1] for b in batch]).to(device, non_blocking=True)
            with train_mod._autocast(train, device):
                losses, logits = batched_step(params, buffers, x, y)
            for o in optimizers:
                o.zero_grad(set_to_none=True)
            losses.sum().backward()
            for o in optimizers:
                o.step()
            for s in schedulers:
                s.step()
            step += 1
            if hooks:
                for m, s in zip(models, seeds):
                    m.after_step(step, s)
            detached = losses.detach()
            bad_step = torch.where(
                (bad_step < 0) & ~torch.isfinite(detached),
                torch.full_like(bad_step, step),
                bad_step,
            )
            n = y.shape[1]
            loss_sum += detached.double() * n
            correct += (logits.detach().argmax(-1) == y).sum(-1).double()
            seen += n
            bar.update(1)
            last = step == total or step % per_epoch == 0
            if device.type == "cpu" or step % train.record_every == 0 or last:
                check(epoch)
            if step % train.record_every == 0 or last:
                lr = schedulers[0].get_last_lr()[0] if schedulers else train.lr
                wall = time.perf_counter() - t0
                for k in range(K):
                    if not live[k]:
                        continue
                    values = {
                        "loss": loss_sum[k] / seen,
                        "train_accuracy": correct[k] / seen,
                        "learning_rate": lr,
                        "wall_time": wall,
                    }
                    probes = projection_metrics(models[k])
                    probes.update(shadow_metrics(models[k], x[k], y[k], autocast=autocast))
                    recorders[k].record(step, epoch, values, probes)
                summary.update(
                    loss=float(loss_sum.mean() / seen), train=float(correct.mean() / seen)
                )
                loss_sum, correct, seen = zeros.clone(), zeros.clone(), 0
            if (
                (train.eval_every and step % train.eval_every == 0)
                or (not train.eval_every and step % per_epoch == 0)
                or step == total
            ):
                accuracy = evaluate()
                for k in range(K):
                    if live[k]:
                        recorders[k].record(step, epoch, {"test_accuracy": accuracy[k]})
                summary["test"] = float(accuracy.mean())
            if step >= total or not any(live):
                break
        train_mod._log_epoch(summary, epoch, train.epochs, time.perf_counter() - epoch_t0)
    bar.close()
    for k in range(K):
        if live[k]:
            paths[k] = recorders[k].write(outs[k], status="complete")
    if diverged:
        raise train_mod.Diverged(
            f"loss became NaN/inf for {len(diverged)} of {K} seeds: {'; '.join(diverged)}; "
            "every file is written (the others completed)"
        )
    return [p for p in paths if p is not None]


def group_points(points: Sequence[Any]) -> list[list[Any]]:
    """Sweep points grouped by everything but the seed (order of first appearance).

    Two points fall in one group when their ``circuit()`` keywords and their ``Train`` without
    ``seed`` are equal; each group is one :func:`fit_seeds` call.
    """
    groups: dict[str, list[Any]] = {}
    for point in points:
        key = repr(
            (
                sorted(point.circuit_kwargs.items(), key=lambda kv: kv[0]),
                point.train.replace(seed=0),
                sorted((k, v) for k, v in point.coords.items() if k != "seed"),
            )
        )
        groups.setdefault(key, []).append(point)
    return list(groups.values())


def run_grouped(
    spec: Any,
    points: Sequence[Any],
    out_dir: Path,
    *,
    command: str = "",
    quiet: bool = False,
    debug: bool = False,
) -> int:
    """The command line's ``--batch-seeds``: each group of :func:`group_points` in
    one
    :func:`fit_seeds` call (one file per point, as ``biofa.cli.main`` names them); groups that
    cannot
    be batched (:func:`supported`) or hold one point run one by one. Returns the exit status."""
    from biofa._version import __version__
    from biofa.cli.main import _error, _jsonable, execute

    failed = 0

    def wrote(path: Path) -> None:
        if not quiet:
            print(f"wrote {path}", flush=True)

    for group in group_points(points):
        first = group[0]
        why = supported(first.circuit, first.train) if len(group) > 1 else None
        if len(group) == 1 or why is not None:
            if why is not None:
                log.warning("%s: %d seeds run one by one: %s", first.name, len(group), why)
            for point in group:
                try:
                    wrote(execute(spec, point, out_dir, command=command))
                except train_mod.Diverged as exc:
                    if debug:
                        raise
                    _error(f"{point.name}: {exc}")
                    failed += 1
            continue
        configs = [
            {
                "spec": spec.name,
                "spec_path": str(spec.path),
                "run": p.name,
                "circuit_name": getattr(p.circuit, "name", ""),
                "circuit": _jsonable(p.circuit_kwargs),
                "train": _jsonable(asdict(p.train)),
            }
            for p in group
        ]
        attrs = [
            {
                "title": f"biofa run {p.name} of {spec.name}",
                "source": f"biofa {__version__}",
                "spec_source": spec.source_text,
                "spec_sha256": spec.sha256,
                **({"command": command} if command else {}),
            }
            for p in group
        ]
        log.info("%d seeds of %s as one batched run", len(group), first.name)
        try:
            paths = fit_seeds(
                first.circuit,
                first.train,
                [p.train.seed for p in group],
                out_dir,
                run_names=[p.name for p in group],
                coords=[dict(p.coords) for p in group],
                run_configs=configs,
                attrs=attrs,
            )
        except train_mod.Diverged as exc:
            if debug:
                raise
            _error(exc)
            failed += 1
            continue
        for path in paths:
            wrote(path)
    return 1 if failed else 0
