"""What a run's file records by default about its circuit and training: the recorder of a
:func:`~biofa.train.fit` call (the command line passes its own configuration and attributes,
:mod:`biofa.cli.provenance`; the feedback pathways and the per-projection labels are added here
for both).

Per projection the file has, besides ``source``, ``target`` and ``op``, the coordinate
``feedback_rule``: the rule of the pathway that sends the error back across the projection (the
pathway ``target -> source``; ``"backprop"`` where none is declared), or, where a direct rule
delivers the readout's error to the projection's source area, that direct rule. It is the rule
that sets the projection's ``feedback_angle`` and the error behind its source's ``error_angle``.
Projections out of the input area send no error; they name the rule their pathway declares.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from biofa import rules
from biofa.circuit import Circuit
from biofa.measure.record import Recorder
from biofa.nn import CompiledCircuit
from biofa.rules import DirectFeedbackRule as DirectRule
from biofa.train.config import Train

__all__ = ["FEEDBACK_RULE", "feedback_config", "projection_labels", "run_recorder"]

#: ``long_name`` of the ``feedback_rule`` coordinate.
FEEDBACK_RULE = "rule of the feedback pathway that sends this projection's error"


def projection_labels(model: CompiledCircuit) -> list[dict[str, str]]:
    """The labels of each projection of ``model`` (its slices): ``projection``, ``source``,
    ``target``, ``op``, ``source_population``, ``target_population`` (``"*"``: the whole
    area) and ``feedback_rule`` (module docstring)."""
    pathways = rules.resolve(model.circuit)
    direct = {p.lower: p.rule for p in pathways if issubclass(rules.get(p.rule), DirectRule)}
    return [
        {
            "projection": s.projection,
            "source": s.source,
            "target": s.target,
            "op": s.op,
            "source_population": s.source_population,
            "target_population": s.target_population,
            "feedback_rule": direct.get(
                f"{s.source}.{s.source_population}", direct.get(s.source, group.rule.name)
            ),
        }
        for s, group in model.projection_slices()
    ]


def feedback_config(circuit: Circuit) -> list[dict[str, Any]]:
    """Every feedback pathway of ``circuit`` (``feedback_everywhere`` expanded) with its rule and
    the rule's options, defaults filled in: what ``run_config["feedback"]`` records."""
    return [
        {
            "pathway": pw.name,
            "upper": pw.upper,
            "lower": pw.lower,
            "rule": pw.rule,
            "options": {**rules.get(pw.rule).defaults, **pw.options},
        }
        for pw in rules.resolve(circuit)
    ]


def run_recorder(
    model: CompiledCircuit,
    circuit: Circuit,
    train: Train,
    device: torch.device | str,
    coords: dict | None = None,
    run_config: dict | None = None,
    attrs: dict | None = None,
) -> Recorder:
    """The run's recorder: one projection per slice of ``model``, labelled by
    :func:`projection_labels`; coordinates ``coords`` (default ``rule``, the circuit's rules joined
    by ``+``, and ``seed``), ``run_config`` (default the circuit's name and ``train``) with
    ``"feedback"`` (:func:`feedback_config`) added, and global ``attrs`` with the circuit's name,
    the device, torch version and data."""
    config = dict(run_config or {"circuit": circuit.name, "train": asdict(train)})
    config.setdefault("feedback", feedback_config(circuit))
    return Recorder(
        projections=projection_labels(model),
        coords=dict(coords or {"rule": "+".join(rules.used_by(circuit)), "seed": train.seed}),
        run_config=config,
        attrs={
            "title": f"biofa run of circuit {circuit.name}",
            **(attrs or {}),
            "circuit": circuit.name,
            "device": str(device),
            "torch_version": torch.__version__,
            "data": train.data,
        },
        label_long_names={
            "feedback_rule": FEEDBACK_RULE,
            "source_population": "source population ('*': every population of the area)",
            "target_population": "target population ('*': every population of the area)",
        },
    )


def device_name(device: torch.device) -> str:
    """``"NVIDIA H100 80GB HBM3"`` or ``"AMD EPYC (2 cores)"`` (CPU model from /proc/cpuinfo)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores)"
