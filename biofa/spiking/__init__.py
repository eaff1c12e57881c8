"""The Brian2 spiking back-end: small trained circuits as spiking networks, feedback included.

* :func:`to_brian2` translates a trained dense E/I circuit into a Brian2 network: every population
  becomes neurons of a model from :data:`NEURON_MODELS` (leaky integrate-and-fire by default),
  every projection synapses carrying the trained weights with their signs (E populations excite,
  I populations inhibit), pixels become Poisson spike trains (or injected currents) at rates
  proportional to intensity, the readout a membrane potential (or spike counts), and every
  feedback pathway its own error populations and synapses (a positive and a negative population
  per signed error). Rates and currents are calibrated from the model's f-I curve and a few
  training images (:mod:`~biofa.spiking.calibrate`).
* :func:`validate` runs it and the rate model on the same test images and returns (and writes)
  an :class:`xarray.Dataset` comparing rates, predictions and delivered errors.

Brian2 is imported only when a function needs it; without it they raise ``ImportError``
(``pip install biofa[spiking]``). Modules: ``neurons`` (model table), ``calibrate``, ``rates``
(the rate model's side), ``plan`` and ``feedback`` (translation, no Brian2; population-level
circuits too, forward only), ``network`` (Brian2 objects), ``targets`` (code generation) and
``build`` (compiling a standalone program), ``spikes``, ``dataset``, ``validate`` (and the checks
of its arguments, ``arguments``).
"""

from biofa.spiking._brian import INSTALL_HINT, require_brian2
from biofa.spiking.calibrate import Calibration
from biofa.spiking.dataset import write as write_netcdf
from biofa.spiking.network import SpikingNetwork
from biofa.spiking.neurons import (
    NEURON_MODELS,
    READOUT_MODEL,
    NeuronModel,
    neuron_model,
    register_neuron_model,
)
from biofa.spiking.plan import Plan
from biofa.spiking.support import check_supported
from biofa.spiking.translate import plan_for, to_brian2
from biofa.spiking.validate import validate

__all__ = [
    "Calibration",
    "INSTALL_HINT",
    "NEURON_MODELS",
    "NeuronModel",
    "Plan",
    "READOUT_MODEL",
    "SpikingNetwork",
    "check_supported",
    "neuron_model",
    "plan_for",
    "register_neuron_model",
    "require_brian2",
    "to_brian2",
    "validate",
    "write_netcdf",
]
