"""Calibration: from rate-model units to firing rates and from pre-activations to input currents.

A ReLU area computes :math:`h = \\max(0, a)` from its pre-activation :math:`a = W x + b`. Its
spiking twin fires at :math:`f(u)`, the neuron model's f-I curve at drive :math:`u = R I`
(volt). We ask for

.. math:: f(\\alpha a + \\beta) \\approx k\\, \\max(0, a),

with three numbers per area, chosen from the area's pre-activations on a few calibration images:

* ``gain`` :math:`k` (Hz per unit of activation) maps the ``percentile``-th percentile
  :math:`\\lambda` of the positive activations to ``max_rate``: :math:`k = r_{max} / \\lambda`
  (data-based normalisation, Diehl et al. 2015; Rueckauer et al. 2017);
* ``drive_gain`` :math:`\\alpha` (volt per unit) and ``drive_offset`` :math:`\\beta` (volt) minimise
  :math:`\\sum (f(\\alpha a + \\beta) - k \\max(0, a))^2` over the calibration samples, starting
  from the straight line through the f-I curve at :math:`r_{max}/4` and :math:`r_{max}`.

A presynaptic population firing at :math:`k_{pre} h_j` then drives the area with synaptic weights
:math:`w_{ij} = \\alpha W_{ij} / (s\\, k_{pre})` and the constant current
:math:`I_i = (\\alpha b_i + \\beta) / R`, with :math:`s` the model's ``drive_per_weight``
(:math:`\\tau_m` for voltage jumps); the weights keep the signs of :math:`W` (Dale's law).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from biofa.spiking.neurons import NeuronModel


@dataclass(frozen=True)
class Calibration:
    """How one area's (or error population's) units map to drive and rate (module docstring).

    Attributes
    ----------
    gain
        :math:`k`, Hz per unit of rate-model activation.
    drive_gain
        :math:`\\alpha`, volt of drive per unit of pre-activation.
    drive_offset
        :math:`\\beta`, volt of drive added to every neuron.
    scale
        :math:`\\lambda`, the activation that maps to ``max_rate``.
    rms_error
        Root-mean-square error (Hz) of the fit on the calibration samples.
    """

    gain: float
    drive_gain: float
    drive_offset: float
    scale: float
    rms_error: float


def rate_function(model: NeuronModel) -> Callable[[np.ndarray], np.ndarray]:
    """``u (volt) -> Hz`` for ``model``: its formula, or a simulated curve interpolated."""
    if model.rate is None:
        drives, rates = measure_rate(model, np.linspace(0.0, 0.2, 201))
        return lambda u: np.interp(u, drives, rates, left=0.0)
    formula, params = model.rate, model.si_params()
    return lambda u: formula(u, params)


def measure_rate(
    model: NeuronModel, drives: np.ndarray, duration: float = 1.0, dt: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate ``model`` at constant drives ``u = R I`` (volt); return ``(drives, rates in Hz)``.

    The rate is the inverse of the mean inter-spike interval (steady state, numpy target), or the
    spike count over ``duration`` for neurons firing fewer than two spikes.
    """
    from biofa.spiking._brian import require_brian2, to_brian

    b2 = require_brian2()
    drives = np.asarray(drives, dtype=np.float64)
    namespace = {k: to_brian(v) for k, v in model.params.items()}
    group = b2.NeuronGroup(
        len(drives),
        model.equations + "\nI : amp (constant)",
        threshold=model.threshold,
        reset=model.reset,
        refractory=model.refractory or False,
        method=model.method,
        namespace=namespace,
        dt=dt * b2.second,
        codeobj_class=b2.NumpyCodeObject,
    )
    for var, expr in model.initial.items():
        value = 0.0 if expr == "0" else eval(expr, {"__builtins__": {}}, namespace)
        setattr(group, var, b2.Quantity(float(value), dim=group.variables[var].dim))
    group.I = drives * b2.volt / namespace["R"]
    monitor = b2.SpikeMonitor(group, codeobj_class=b2.NumpyCodeObject)
    b2.Network(group, monitor).run(duration * b2.second, namespace={})
    trains = monitor.spike_trains()
    rates = [
        1.0 / np.mean(np.diff(trains[k] / b2.second))
        if len(trains[k]) > 1
        else len(trains[k]) / duration
        for k in range(len(drives))
    ]
    return drives, np.asarray(rates, dtype=np.float64)


def fit(
    pre: np.ndarray,
    rate: Callable[[np.ndarray], np.ndarray],
    max_rate: float,
    percentile: float = 99.5,
    max_samples: int = 20000,
    seed: int = 0,
) -> Calibration:
    """Fit :class:`Calibration` for pre-activation samples ``pre`` (any shape; module docstring).

    Raises
    ------
    ValueError
        If the f-I curve never reaches ``max_rate`` (choose a lower ``max_rate``).
    """
    from scipy.optimize import minimize

    a = np.asarray(pre, dtype=np.float64).ravel()
    if a.size > max_samples:
        a = np.random.default_rng(seed).choice(a, max_samples, replace=False)
    positive = a[a > 0]
    scale = float(np.percentile(positive, percentile)) if positive.size else 1.0
    gain = max_rate / scale
    target = gain * np.maximum(a, 0.0)
    u_low, u_high = _drive_at(rate, max_rate / 4), _drive_at(rate, max_rate)
    slope = (max_rate - max_rate / 4) / (u_high - u_low)  # Hz per volt
    alpha0, beta0 = gain / slope, u_low - (max_rate / 4) / slope
    volt = max(abs(beta0), u_high - u_low)  # a natural scale for the search

    def loss(z: np.ndarray) -> float:
        return float(np.mean((rate(alpha0 * z[0] * a + beta0 + volt * z[1]) - target) ** 2))

    best = minimize(
        loss,
        np.array([1.0, 0.0]),
        method="Nelder-Mead",
        options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 400},
    )
    alpha, beta = alpha0 * float(best.x[0]), beta0 + volt * float(best.x[1])
    return Calibration(gain, alpha, beta, scale, float(np.sqrt(best.fun)))


def _drive_at(rate: Callable[[np.ndarray], np.ndarray], hz: float) -> float:
    """The drive (volt) at which ``rate`` reaches ``hz`` (bisection on the monotone f-I curve)."""
    low, high = 0.0, 0.01
    while rate(np.array([high]))[0] < hz:
        low, high = high, high * 2
        if high > 1e3:
            raise ValueError(
                f"max_rate={hz:g} Hz is beyond the neuron model's f-I curve "
                "(reached at no drive below 1 kV); choose a lower max_rate"
            )
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if rate(np.array([mid]))[0] < hz else (low, mid)
    return (low + high) / 2
