"""``validate``: run a circuit in spikes and in rates on the same test images and compare them.

Reported (all in the returned :class:`xarray.Dataset`, see :mod:`biofa.spiking.dataset`):

* ``rate_correlation`` per population: Pearson correlation, over images and neurons, of the
  spiking rates (Hz, after the settling time) with the rate model's activations;
* ``class_agreement``: fraction of images on which both predict the same class, and
  ``accuracy_rate_model`` / ``accuracy_spiking`` against the labels;
* ``readout_correlation``: decoded spiking logits against the rate model's logits;
* ``error_correlation`` per hidden area: the signed error delivered by the spiking feedback
  pathway, :math:`(r^+ - r^-)/k_\\delta`, against the error the rate model delivers for the same
  images and ``error_target`` classes.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from biofa._version import __version__
from biofa.circuit import Circuit
from biofa.data import DataSource
from biofa.data import load as load_data
from biofa.nn import CompiledCircuit
from biofa.nn.saved import load_model
from biofa.spiking import dataset
from biofa.spiking.arguments import check_model_matches_data, check_validate_arguments
from biofa.spiking.network import SpikingNetwork
from biofa.spiking.rates import RateTrace, probe
from biofa.spiking.spikes import SpikeRecord
from biofa.spiking.translate import compiled, error_targets, intensities, to_brian2

log = logging.getLogger(__name__)


def validate(
    model: CompiledCircuit | Circuit | str | Path,
    data: DataSource | str,
    n_images: int = 200,
    duration: float = 0.1,
    target: str = "auto",
    *,
    error_target: Any = "label",
    out: str | Path | None = None,
    copies: int = 100,
    raster_images: int = 5,
    bin_width: float = 0.005,
    seed: int = 0,
    **options: Any,
) -> xr.Dataset:
    """Compare ``model`` in spikes with itself in rates on ``n_images`` test images.

    Parameters
    ----------
    model, data
        The trained circuit (or the path of its model file, ``<run>.model.pt``, or of its run's
        ``.nc``: :func:`biofa.load_model`) and its data set (or the data set's name).
    n_images, duration
        Test images shown (a random subset drawn with ``seed``, all if ``n_images`` is at least
        the test set's size; at least 1), and seconds each is shown for (more than ``settle``).
    target
        Brian2 code-generation target: ``"auto"``, ``"numpy"``, ``"cython"``, ``"cpp_standalone"``.
    error_target
        Classes the readout error ``softmax - onehot`` is taken against: ``"label"``,
        ``"prediction"``, one class for all images, or one per image.
    out
        If given, the Dataset is also written there (netCDF4, atomically).
    copies
        Copies of the network simulated side by side (images per stimulus slot; at least 1).
    raster_images, bin_width
        Images whose spikes are kept for rasters; bin of ``population_rate`` (s).
    **options
        Passed to :func:`~biofa.spiking.to_brian2` (``neuron``, ``settle``, ``dt``, ``layout``,
        ``encoding``, ``readout``, ``max_rate``, ``input_rate``, ``error_rate``, ...).

    Raises
    ------
    ValueError, TypeError
        Before any Brian2 work, naming the argument: a count that is not a positive integer
        (``n_images``, ``copies``; ``raster_images`` may be 0), a time that is not a positive
        number of seconds, ``settle`` not below ``duration``, or a model compiled for another
        input shape or class count than ``data``'s (:mod:`biofa.spiking.arguments`).
    """
    check_validate_arguments(
        n_images=n_images,
        duration=duration,
        copies=copies,
        raster_images=raster_images,
        bin_width=bin_width,
        **{k: options[k] for k in ("settle",) if k in options},
    )
    start = time.perf_counter()
    if isinstance(model, (str, Path)):
        model = load_model(model)
    data = load_data(data) if isinstance(data, str) else data
    model = compiled(model, data, None, None, seed)
    check_model_matches_data(model, data)
    index = test_subset(data.n_test, n_images, seed)
    raw, labels = (t.cpu() for t in data.test_examples(index))
    n = len(index)
    x = data.normalize(raw)
    logits = probe(model, x).logits if isinstance(error_target, str) else None
    targets = error_targets(error_target, labels, logits, model.num_classes)
    trace = probe(model, x, targets)
    copies = max(1, min(copies, n))
    net = to_brian2(
        model,
        data,
        copies=copies,
        segments=math.ceil(n / copies),
        duration=duration,
        target=target,
        seed=seed,
        **options,
    )
    built = time.perf_counter()
    try:
        record = net.run(intensities(raw).flatten(1).numpy(), trace.output_error)
        ran = time.perf_counter()
        ds = _dataset(
            net,
            record,
            trace,
            labels.numpy(),
            targets.numpy(),
            raster_images,
            bin_width,
            index.numpy(),
        )
    finally:
        net.close()
    import brian2

    ds.attrs.update(
        {
            "Conventions": "CF-1.8",
            "title": "biofa spiking validation",
            "source": f"biofa {__version__}",
            "biofa_version": __version__,
            "brian2_version": brian2.__version__,
            "created": _now(),
            "circuit": net.plan.circuit,
            "data": data.name,
            "codegen_target": net.target,
            "layout": "populations" if net.by_population else "merged",
            "neuron_model": net.plan.neuron.name,
            "readout": net.plan.readout,
            "encoding": net.plan.encoding,
            "duration": duration,
            "settle": net.timing.settle,
            "dt": net.timing.dt,
            "copies": net.copies,
            "segments": net.timing.segments,
            "input_rate": net.plan.input_rate,
            "error_rate": net.plan.error_rate,
            "error_target": str(error_target)[:64],
            "build_seconds": built - start,
            "simulation_cpu_seconds": net.cpu_seconds,
            "run_seconds": ran - built,
            "wall_seconds": time.perf_counter() - start,
        }
    )
    log.info(
        "biofa.spiking: %d images, rate correlation %s, class agreement %.3f, error "
        "correlation %s (%s, %.1f s)",
        n,
        np.round(ds.rate_correlation.values, 3).tolist(),
        float(ds.class_agreement),
        np.round(ds.error_correlation.values, 3).tolist() if "error_correlation" in ds else "-",
        net.target,
        ds.attrs["wall_seconds"],
    )
    if out is not None:
        dataset.write(ds, out)
    return ds


def test_subset(size: int, n: int, seed: int) -> torch.Tensor:
    """``n`` test indices drawn without replacement (seeded), in increasing order.

    A random subset, not the first ``n``: image folders list the test set class by class.
    """
    if n >= size:
        return torch.arange(size)
    chosen = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:n]
    return chosen.sort().values


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the flattened arrays (NaN when either is constant)."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denom) if denom > 0 else math.nan


def _dataset(
    net: SpikingNetwork,
    record: SpikeRecord,
    trace: RateTrace,
    labels: np.ndarray,
    targets: np.ndarray,
    raster_images: int,
    bin_width: float,
    index: np.ndarray,
) -> xr.Dataset:
    plan = net.plan
    pops = [p for p in plan.populations.values() if p.kind == "neuron" and p.role != "error"]
    fwd: dict[str, list] = {
        k: [] for k in ("population", "area", "count", "rate", "activation", "expected")
    }
    cal = {k: [] for k in ("gain", "drive_gain", "drive_offset")}
    corr, psth, raster, offset = [], [], {"time": [], "neuron": [], "image": []}, 0
    for p in pops:
        c = plan.calibration_of(p.name)
        h = np.maximum(
            trace.act[p.area][:, p.channels[0] : p.channels[1]]
            - (plan.readout_shift if p.role == "readout" else 0.0),
            0.0,
        )
        count = record.counts(p.name)
        fwd["population"] += [p.name] * p.size
        fwd["area"] += [p.area] * p.size
        for key, value in (
            ("count", count),
            ("rate", count / record.window),
            ("activation", h),
            ("expected", c.gain * h),
        ):
            fwd[key].append(value)
        corr.append(correlation(count, h))
        for key in cal:
            cal[key].append(getattr(c, key))
        time_axis, rate = record.population_rate(p.name, bin_width)
        psth.append(rate)
        image, neuron, t = record.spikes[p.name]
        keep = image < raster_images
        raster["time"].append(t[keep]), raster["image"].append(image[keep])
        raster["neuron"].append(neuron[keep] + offset)
        offset += p.size
    forward = {
        k: np.array(v) if k in ("population", "area") else np.concatenate(v, axis=1)
        for k, v in fwd.items()
    }
    readout = _readout(net, record, trace)
    readout.update(label=labels, error_target=targets, prediction_rate_model=trace.logits.argmax(1))
    agree = float(np.mean(readout["prediction_spiking"] == readout["prediction_rate_model"]))
    scalars = {
        "rate_correlation": (
            np.array(corr),
            "correlation of spiking rates and rate-model activations",
        ),
        "class_agreement": (agree, "fraction of images where both predict the same class"),
        "accuracy_rate_model": (
            float(np.mean(readout["prediction_rate_model"] == labels)),
            "accuracy of the rate model",
        ),
        "accuracy_spiking": (
            float(np.mean(readout["prediction_spiking"] == labels)),
            "accuracy of the spiking network",
        ),
        "readout_correlation": (
            correlation(readout["logits_spiking"], trace.logits),
            "correlation of decoded spiking logits and rate-model logits",
        ),
    }
    calibration = {
        "gain": (np.array(cal["gain"]), "calibrated rate per unit of activation", "Hz"),
        "drive_gain": (
            np.array(cal["drive_gain"]),
            "input drive R*I per unit of pre-activation",
            "V",
        ),
        "drive_offset": (np.array(cal["drive_offset"]), "constant input drive R*I", "V"),
    }
    return dataset.build(
        time=time_axis,
        population_rate=np.stack(psth, axis=-1).transpose(1, 0, 2),
        populations=[p.name for p in pops],
        forward=forward,
        errors=_errors(plan, record, trace),
        readout=readout,
        scalars=scalars,
        calibration=calibration,
        raster={k: np.concatenate(v) for k, v in raster.items()},
        images=index,
        attrs={},
    )


def _readout(net: SpikingNetwork, record: SpikeRecord, trace: RateTrace) -> dict[str, np.ndarray]:
    plan = net.plan
    cal = plan.calibration[plan.readout_area]
    if plan.readout == "voltage":
        potential = record.readout_potential
        decoded = potential / cal.drive_gain
        out = {"potential": potential, "prediction_spiking": potential.argmax(1)}
    else:
        rates = record.rates(plan.readout_area)
        decoded = rates / cal.gain + plan.readout_shift
        out = {"prediction_spiking": rates.argmax(1)}
    return {
        **out,
        "logits_spiking": decoded,
        "logits_rate_model": trace.logits,
        "error": trace.output_error,
    }


def _errors(plan, record: SpikeRecord, trace: RateTrace) -> dict[str, np.ndarray] | None:
    areas = [a for a in plan.errors if a != plan.readout_area]
    if not areas:
        return None
    cols: dict[str, list] = {
        k: [] for k in ("area", "rate_model", "spiking", "positive", "negative")
    }
    corr, gains = [], []
    for area in areas:
        k = plan.calibration[f"{area}.err"].gain
        decoded, wanted = [], []
        for pos, neg in plan.errors[area]:
            lo, hi = plan.populations[pos].channels
            rp, rn = record.rates(pos), record.rates(neg)
            cols["positive"].append(rp), cols["negative"].append(rn)
            decoded.append((rp - rn) / k), wanted.append(trace.error[area][:, lo:hi])
            cols["area"] += [area] * (hi - lo)
        cols["spiking"] += decoded
        cols["rate_model"] += wanted
        corr.append(correlation(np.concatenate(decoded, 1), np.concatenate(wanted, 1)))
        gains.append(k)
    out = {k: np.array(v) if k == "area" else np.concatenate(v, axis=1) for k, v in cols.items()}
    out.update(areas=np.array(areas), correlation=np.array(corr), gain=np.array(gains))
    return out
