"""The validation result as an xarray Dataset, written atomically as compressed netCDF4.

Dimensions: ``time`` (first; seconds from stimulus onset, bin centres), ``image``, ``neuron``
(every forward spiking neuron of one copy), ``class``, ``population``, ``error_neuron`` (every
neuron of a hidden area's delivered error), ``error_area`` and ``spike`` (raster of the first
images). Every variable carries ``long_name`` and ``units`` (``Hz``, ``s``, ``V``, ``1``).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from biofa.measure.netcdf import history, write_netcdf


def _var(dims, values, long_name: str, units: str = "1") -> tuple:
    return (dims, np.asarray(values), {"long_name": long_name, "units": units})


def build(
    *,
    time: np.ndarray,
    population_rate: np.ndarray,
    populations: list[str],
    forward: dict[str, np.ndarray],
    errors: dict[str, np.ndarray] | None,
    readout: dict[str, np.ndarray],
    scalars: dict[str, tuple[float, str]],
    calibration: dict[str, np.ndarray],
    raster: dict[str, np.ndarray],
    images: np.ndarray,
    attrs: dict[str, Any],
) -> xr.Dataset:
    """Assemble the Dataset from arrays already aligned on its dimensions (see ``validate``)."""
    coords: dict[str, Any] = {
        "time": _var("time", time, "time from stimulus onset (bin centre)", "s"),
        "image": _var("image", images, "index of the image in the test split"),
        "population": _var("population", np.array(populations, dtype=str), "population"),
        "neuron": _var(
            "neuron",
            np.arange(len(forward["population"])),
            "forward neuron of one copy of the circuit",
        ),
        "neuron_population": _var(
            "neuron", forward["population"].astype(str), "population of the neuron"
        ),
        "neuron_area": _var("neuron", forward["area"].astype(str), "area of the neuron"),
        "class": _var("class", np.arange(readout["logits_rate_model"].shape[1]), "class index"),
    }
    v: dict[str, Any] = {
        "population_rate": _var(
            ("time", "image", "population"), population_rate, "population firing rate", "Hz"
        ),
        "spike_count": _var(
            ("image", "neuron"), forward["count"], "spike count after the settling time"
        ),
        "spiking_rate": _var(
            ("image", "neuron"), forward["rate"], "firing rate after the settling time", "Hz"
        ),
        "rate_model_activation": _var(
            ("image", "neuron"), forward["activation"], "activation of the rate model"
        ),
        "expected_rate": _var(
            ("image", "neuron"),
            forward["expected"],
            "rate model activation times the calibrated gain",
            "Hz",
        ),
    }
    names = {
        "label": ("label (true class)", "1"),
        "error_target": ("class the readout error is taken against", "1"),
        "prediction_rate_model": ("class predicted by the rate model", "1"),
        "prediction_spiking": ("class predicted by the spiking network", "1"),
    }
    for key, (long_name, units) in names.items():
        v[key] = _var("image", readout[key], long_name, units)
    v["logits_rate_model"] = _var(
        ("image", "class"), readout["logits_rate_model"], "logits of the rate model"
    )
    v["logits_spiking"] = _var(
        ("image", "class"), readout["logits_spiking"], "logits decoded from the spiking readout"
    )
    v["readout_error"] = _var(
        ("image", "class"), readout["error"], "readout error softmax - onehot(error_target)"
    )
    if "potential" in readout:
        v["readout_potential"] = _var(
            ("image", "class"),
            readout["potential"],
            "mean readout membrane potential above rest",
            "V",
        )
    for key, (values, long_name, units) in calibration.items():
        v[key] = _var("population", values, long_name, units)
    for key, (value, long_name) in scalars.items():
        dims = () if np.ndim(value) == 0 else "population"
        v[key] = _var(dims, value, long_name)
    if errors is not None:
        coords["error_area"] = _var(
            "error_area", errors["areas"].astype(str), "area receiving error"
        )
        coords["error_neuron"] = _var(
            "error_neuron", np.arange(errors["spiking"].shape[1]), "neuron of a delivered error"
        )
        coords["error_neuron_area"] = _var(
            "error_neuron", errors["area"].astype(str), "area the error is delivered to"
        )
        v["delivered_error_rate_model"] = _var(
            ("image", "error_neuron"), errors["rate_model"], "error delivered by the rate model"
        )
        v["delivered_error_spiking"] = _var(
            ("image", "error_neuron"),
            errors["spiking"],
            "error delivered by the spiking feedback pathway",
        )
        v["error_rate_positive"] = _var(
            ("image", "error_neuron"),
            errors["positive"],
            "firing rate of the positive error population",
            "Hz",
        )
        v["error_rate_negative"] = _var(
            ("image", "error_neuron"),
            errors["negative"],
            "firing rate of the negative error population",
            "Hz",
        )
        v["error_correlation"] = _var(
            "error_area",
            errors["correlation"],
            "correlation of spiking and rate-model delivered errors",
        )
        v["error_gain"] = _var("error_area", errors["gain"], "error population gain", "Hz")
    v["spike_time"] = _var("spike", raster["time"], "spike time from stimulus onset", "s")
    v["spike_neuron"] = _var("spike", raster["neuron"], "index of the spiking neuron")
    v["spike_image"] = _var("spike", raster["image"], "position of the image along dim image")
    clean = {k: (int(x) if isinstance(x, bool | np.bool_) else x) for k, x in attrs.items()}
    return xr.Dataset(v, coords=coords, attrs=clean)


def write(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` atomically to ``path`` (netCDF4, zlib level 4): temporary file, then rename;
    the file gets a CF ``history`` attribute (from ``created``, and this process's command)."""
    if "history" not in ds.attrs:
        created = ds.attrs.get("created") or datetime.now(timezone.utc).isoformat("T", "seconds")
        ds = ds.assign_attrs(history=history(str(created)))
    return write_netcdf(ds, path)
