"""Neuron models of the spiking back-end: Brian2 equations with physical units, f-I curves.

Every model is driven by an input current ``I`` (amp) that the back-end defines (the area's bias as
a constant current, plus the stimulus for current-injection input), and receives spikes through
synapses that add ``w`` to ``synapse_target`` (``v_post += w``: a voltage jump). The default,
``"lif"``, is the leaky integrate-and-fire neuron

.. math::
    \\tau_m \\frac{dv}{dt} = E_L - v + R I, \\qquad v > V_{th} \\Rightarrow v \\leftarrow V_{reset}
    \\text{ and } t_{ref} \\text{ of refractoriness},

whose firing rate for a constant drive :math:`u = R I` (volt) is

.. math::
    f(u) = \\Big[t_{ref} + \\tau_m \\ln \\frac{u - (V_{reset} - E_L)}{u - (V_{th} - E_L)}\\Big]^{-1}
    \\quad (u > V_{th} - E_L), \\qquad 0 \\text{ otherwise.}

The calibration (:mod:`biofa.spiking.calibrate`) needs two facts of a model: ``rate(u)``, its f-I
curve as a function of the drive ``u`` (volt; measured by simulation when no formula is given),
and ``drive_per_weight``: the mean drive (volt) a presynaptic neuron firing at 1 Hz adds through a
synapse of weight 1 (SI): ``tau_m`` for voltage jumps, since
:math:`\\langle \\sum_k w\\,\\delta(t - t_k) \\rangle = w r` adds :math:`\\tau_m w r` to ``u``.

Add a model with :func:`register_neuron_model`; every parameter is text with a unit (``"20 ms"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from biofa.spiking._brian import si

RateFunction = Callable[[np.ndarray, dict[str, float]], np.ndarray]


@dataclass(frozen=True)
class NeuronModel:
    """A neuron model of the table (see the module docstring).

    Parameters
    ----------
    name
        Key in :data:`NEURON_MODELS`.
    equations
        Brian2 equations using the input current ``I`` (amp, defined by the back-end) and the
        parameters; they must define ``v`` (volt).
    threshold, reset, refractory
        Brian2 spike condition, reset statements and refractory period (``None``: non-spiking).
    params
        Parameter name -> quantity text, e.g. ``{"tau_m": "20 ms"}``; ``R`` (ohm) is required.
    initial
        Variable -> its value at the start of each stimulus: an expression of the parameters
        (``"E_L"``) or ``"0"``.
    synapse_target, weight_unit
        What a presynaptic spike increments (``f"{synapse_target}_post += w"``) and ``w``'s unit.
    drive_per_weight
        Expression in the parameters (SI): mean drive in volt per unit weight per Hz.
    rate
        Analytic f-I curve ``rate(u, params_si) -> Hz`` for drives ``u`` in volt, or ``None``
        (then :func:`biofa.spiking.calibrate.measure_rate` simulates it).
    method
        Brian2 integration method.
    """

    name: str
    equations: str
    threshold: str | None
    reset: str | None
    refractory: str | None
    params: dict[str, str]
    initial: dict[str, str] = field(default_factory=lambda: {"v": "E_L"})
    synapse_target: str = "v"
    weight_unit: str = "volt"
    drive_per_weight: str = "tau_m"
    rate: RateFunction | None = None
    method: str = "exact"

    def __post_init__(self) -> None:
        if "R" not in self.params:
            raise ValueError(
                f"neuron model {self.name!r}: params need the resistance 'R' "
                "(the bias and stimulus currents I act through R*I)"
            )
        for key, text in self.params.items():
            try:
                si(text)
            except ValueError as err:
                raise ValueError(f"neuron model {self.name!r}: parameter {key}: {err}") from None

    def si_params(self) -> dict[str, float]:
        """Parameters in SI units (floats)."""
        return {k: si(v) for k, v in self.params.items()}

    def weight_scale(self) -> float:
        """Mean drive (volt) per unit weight (SI) per Hz of presynaptic rate."""
        return float(eval(self.drive_per_weight, {"__builtins__": {}}, self.si_params()))


def lif_rate(u: np.ndarray, p: dict[str, float]) -> np.ndarray:
    """Firing rate (Hz) of the LIF neuron for constant drives ``u = R I`` (volt)."""
    u = np.asarray(u, dtype=np.float64)
    d_th, d_reset = p["V_th"] - p["E_L"], p["V_reset"] - p["E_L"]
    out = np.zeros_like(u)
    ok = u > d_th + 1e-12
    out[ok] = 1.0 / (p["t_ref"] + p["tau_m"] * np.log((u[ok] - d_reset) / (u[ok] - d_th)))
    return out


def if_rate(u: np.ndarray, p: dict[str, float]) -> np.ndarray:
    """Firing rate (Hz) of the non-leaky IF neuron: ``1 / (t_ref + tau_m (V_th - V_reset) / u)``."""
    u = np.asarray(u, dtype=np.float64)
    out = np.zeros_like(u)
    ok = u > 1e-12
    out[ok] = 1.0 / (p["t_ref"] + p["tau_m"] * (p["V_th"] - p["V_reset"]) / u[ok])
    return out


_LIF_PARAMS = {
    "tau_m": "20 ms",
    "E_L": "-65 mV",
    "V_th": "-50 mV",
    "V_reset": "-65 mV",
    "t_ref": "2 ms",
    "R": "100 Mohm",
}

NEURON_MODELS: dict[str, NeuronModel] = {}


def register_neuron_model(model: NeuronModel, *, replace: bool = False) -> NeuronModel:
    """Add ``model`` to :data:`NEURON_MODELS` under ``model.name``."""
    if model.name in NEURON_MODELS and not replace:
        raise ValueError(f"neuron model {model.name!r} exists; pass replace=True to replace it")
    NEURON_MODELS[model.name] = model
    return model


def neuron_model(model: str | NeuronModel) -> NeuronModel:
    """The model named ``model`` (or ``model`` itself); ``ValueError`` listing the names."""
    if isinstance(model, NeuronModel):
        return model
    if model not in NEURON_MODELS:
        raise ValueError(
            f"neuron={model!r} is not a neuron model; available: "
            f"{', '.join(sorted(NEURON_MODELS))} (or pass a NeuronModel)"
        )
    return NEURON_MODELS[model]


register_neuron_model(
    NeuronModel(
        name="lif",
        equations="dv/dt = (E_L - v + R*I) / tau_m : volt (unless refractory)",
        threshold="v > V_th",
        reset="v = V_reset",
        refractory="t_ref",
        params=dict(_LIF_PARAMS),
        rate=lif_rate,
    )
)
register_neuron_model(
    NeuronModel(
        name="lif_exp",  # exponentially decaying synaptic current: smoother drive, same f-I curve
        equations="dv/dt = (E_L - v + R*(I + I_s)) / tau_m : volt (unless refractory)\n"
        "dI_s/dt = -I_s / tau_s : amp",
        threshold="v > V_th",
        reset="v = V_reset",
        refractory="t_ref",
        params={**_LIF_PARAMS, "tau_s": "5 ms"},
        initial={"v": "E_L", "I_s": "0"},
        synapse_target="I_s",
        weight_unit="amp",
        drive_per_weight="R*tau_s",
        rate=lif_rate,
    )
)
register_neuron_model(
    NeuronModel(
        name="if",  # non-leaky, reset by subtraction: rate proportional to drive above zero
        equations="dv/dt = R*I / tau_m : volt (unless refractory)",
        threshold="v > V_th",
        reset="v -= V_th - V_reset",
        refractory="t_ref",
        params={
            "tau_m": "20 ms",
            "E_L": "-65 mV",
            "V_th": "-50 mV",
            "V_reset": "-65 mV",
            "t_ref": "1 ms",
            "R": "100 Mohm",
        },
        rate=if_rate,
        method="euler",  # exact for a drive that does not depend on v
    )
)
#: The membrane-potential readout: a leaky integrator that never fires.
READOUT_MODEL = NeuronModel(
    name="integrator",
    equations="dv/dt = (E_L - v + R*I) / tau_m : volt",
    threshold=None,
    reset=None,
    refractory=None,
    params={"tau_m": "20 ms", "E_L": "-65 mV", "R": "100 Mohm"},
)
