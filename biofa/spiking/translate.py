"""``to_brian2``: a trained (or freshly compiled) circuit as a calibrated Brian2 network."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from biofa.circuit import Circuit
from biofa.data import DataSource
from biofa.data import load as load_data
from biofa.nn import CompiledCircuit
from biofa.spiking._brian import require_brian2
from biofa.spiking.network import SpikingNetwork
from biofa.spiking.neurons import NeuronModel, neuron_model
from biofa.spiking.plan import Plan, build_plan, normalization_of
from biofa.spiking.rates import probe

log = logging.getLogger(__name__)

#: ``build_plan`` keywords accepted by :func:`to_brian2` and :func:`biofa.spiking.validate`.
PLAN_OPTIONS = (
    "readout",
    "encoding",
    "max_rate",
    "input_rate",
    "input_total_rate",
    "error_rate",
    "readout_range",
    "percentile",
    "feedback",
    "error_synapses",
    "max_neurons",
)


def to_brian2(
    model: CompiledCircuit | Circuit,
    data: DataSource | str | None = None,
    *,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    target: str = "auto",
    **options: Any,
) -> SpikingNetwork:
    """Translate ``model`` into a Brian2 network (see :mod:`biofa.spiking`).

    Parameters
    ----------
    model
        A trained :class:`~biofa.nn.compiler.CompiledCircuit`, or a :class:`~biofa.circuit.Circuit`
        (compiled here with ``input_shape``, ``num_classes`` and ``seed``: untrained weights).
    data
        The data set the model was trained on (or its name): its normalisation is folded into
        the input weights and ``calibration_images`` of its training images (drawn with
        ``seed``) calibrate the rate scales. ``None`` calibrates on uniform random images (a
        logged warning).
    target
        The Brian2 code-generation target (:mod:`~biofa.spiking.targets`; ``"auto"``:
        ``cpp_standalone`` where a compiler exists, else ``numpy``).
    **options
        :class:`~biofa.spiking.network.SpikingNetwork` keywords (``copies``, ``segments``,
        ``duration``, ``settle``, ``dt``, ``layout``, ``threads``; seconds; ``threads``: OpenMP
        threads of a standalone build, 0: none), :func:`plan_for`'s ``neuron`` (a name in
        :data:`~biofa.spiking.neurons.NEURON_MODELS` or a
        :class:`~biofa.spiking.neurons.NeuronModel`) and ``calibration_images``, and
        :func:`~biofa.spiking.plan.build_plan` keywords: ``readout`` (``"voltage"`` or
        ``"spikes"``), ``encoding`` (``"poisson"`` or ``"current"``), ``max_rate``,
        ``input_rate``, ``input_total_rate``, ``error_rate`` (Hz), ``readout_range`` (V),
        ``percentile``, ``feedback`` (default: the feedback pathways of an area-to-area
        circuit; a population-level circuit is translated forward only), ``max_neurons``.

    Raises
    ------
    ValueError
        For a circuit the back-end cannot translate (the message says why and what it supports).
    ImportError
        Without Brian2 (``pip install biofa[spiking]``).
    """
    require_brian2()
    network = {k: options.pop(k) for k in NETWORK_OPTIONS if k in options}
    plan = plan_for(
        model, data, input_shape=input_shape, num_classes=num_classes, seed=seed, **options
    )
    return SpikingNetwork(plan, target=target, seed=seed, **network)


#: the keywords of :func:`to_brian2` that go to :class:`~biofa.spiking.network.SpikingNetwork`
NETWORK_OPTIONS = ("copies", "segments", "duration", "settle", "dt", "layout", "threads")


def plan_for(
    model: CompiledCircuit | Circuit,
    data: DataSource | str | None = None,
    *,
    input_shape=None,
    num_classes=None,
    seed: int = 0,
    neuron: str | NeuronModel = "lif",
    calibration_images: int = 256,
    **options: Any,
) -> Plan:
    """The calibrated :class:`~biofa.spiking.plan.Plan` of :func:`to_brian2` (no Brian2 needed)."""
    unknown = sorted(set(options) - set(PLAN_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(PLAN_OPTIONS)}")
    data = load_data(data) if isinstance(data, str) else data
    model = compiled(model, data, input_shape, num_classes, seed)
    x, labels, mean_input = calibration_batch(model, data, calibration_images, seed)
    # Errors for random classes span the range a feedback pathway must carry (mostly confidently
    # wrong predictions); errors against the labels of training images are mostly tiny.
    wrong = torch.randint(
        0, model.num_classes, (len(x),), generator=torch.Generator().manual_seed(seed)
    )
    return build_plan(
        model,
        probe(model, x, labels),
        normalization_of(data, model.input_shape[0]),
        neuron=neuron_model(neuron),
        error_trace=probe(model, x, wrong),
        mean_input=mean_input,
        **options,
    )


def compiled(
    model: CompiledCircuit | Circuit, data: DataSource | None, input_shape, num_classes, seed: int
) -> CompiledCircuit:
    """``model`` itself, or the circuit compiled for ``data`` (or the given shapes)."""
    if isinstance(model, CompiledCircuit):
        return model
    if not isinstance(model, Circuit):
        raise TypeError(f"model must be a CompiledCircuit or a Circuit, not {type(model).__name__}")
    if data is not None:
        input_shape, num_classes = input_shape or data.input_shape, num_classes or data.num_classes
    if input_shape is None or num_classes is None:
        raise ValueError(
            "to_brian2(circuit): give data= or input_shape= and num_classes= to compile it"
        )
    log.warning(
        "biofa.spiking: translating circuit %r with untrained weights (seed %d)", model.name, seed
    )
    return CompiledCircuit(model, tuple(input_shape), num_classes, seed)


def intensities(x: torch.Tensor) -> torch.Tensor:
    """Raw images as float intensities in [0, 1] (uint8 / 255; float sets are already there)."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def calibration_batch(model: CompiledCircuit, data: DataSource | None, n: int, seed: int):
    """``(normalised images, labels, mean summed intensity)`` of ``n`` random training images."""
    if data is None:
        log.warning("biofa.spiking: no data given; calibrating on %d uniform random images", n)
        x = torch.rand(n, *model.input_shape, generator=torch.Generator().manual_seed(seed))
        return x, None, float(x.flatten(1).sum(1).mean())
    if tuple(data.input_shape) != tuple(model.input_shape):
        raise ValueError(
            f"data {data.name!r} has images {data.input_shape}, the model expects "
            f"{model.input_shape}"
        )
    # a random subset, not the first n: image folders list their images class by class
    index = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(seed))[:n]
    raw, labels = (t.cpu() for t in data.train_examples(index))
    return (
        data.normalize(raw),
        labels,
        float(intensities(raw).flatten(1).sum(1).mean()),
    )


def error_targets(
    error_target: Any, labels: torch.Tensor, logits: np.ndarray | None, classes: int
) -> torch.Tensor:
    """Classes the readout error is taken against: ``"label"``, ``"prediction"``, int or array."""
    n = len(labels)
    if isinstance(error_target, str):
        if error_target == "label":
            return labels.long()
        if error_target == "prediction":
            return torch.from_numpy(logits.argmax(1))
        raise ValueError(
            f"error_target={error_target!r} must be 'label', 'prediction', a class "
            "index or one class per image"
        )
    t = (
        torch.as_tensor(error_target).long().reshape(-1).expand(n)
        if np.ndim(error_target) == 0
        else torch.as_tensor(np.asarray(error_target)).long()
    )
    if len(t) != n or bool(((t < 0) | (t >= classes)).any()):
        raise ValueError(f"error_target: need one class in 0..{classes - 1} per image ({n})")
    return t.clone()
