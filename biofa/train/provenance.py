"""What a run's file records by default about its circuit and training: the recorder of a
:func:`~biofa.train.fit` call (the command line passes its own configuration and attributes,
:mod:`biofa.cli.provenance`)."""

from __future__ import annotations

from dataclasses import asdict

import torch

from biofa import rules
from biofa.circuit import Circuit
from biofa.measure.record import Recorder
from biofa.nn import CompiledCircuit
from biofa.train.config import Train

__all__ = ["run_recorder"]


def run_recorder(
    model: CompiledCircuit,
    circuit: Circuit,
    train: Train,
    device: torch.device | str,
    coords: dict | None = None,
    run_config: dict | None = None,
    attrs: dict | None = None,
) -> Recorder:
    """The run's recorder: one projection per slice of ``model`` (with its source and target
    populations, ``"*"`` for a whole area); coordinates ``coords`` (default
    ``rule``, the circuit's rules joined by ``+``, and ``seed``), ``run_config`` (default the
    circuit's name and ``train``) and global ``attrs`` with the device, torch version and data."""
    return Recorder(
        projections=[
            {
                "name": s.projection,
                "source": s.source,
                "target": s.target,
                "op": s.op,
                "source_population": s.source_population,
                "target_population": s.target_population,
            }
            for s, _ in model.projection_slices()
        ],  # fmt: skip
        coords=dict(coords or {"rule": "+".join(rules.used_by(circuit)), "seed": train.seed}),
        run_config=dict(run_config or {"circuit": circuit.name, "train": asdict(train)}),
        attrs={
            "title": f"biofa run of circuit {circuit.name}",
            **(attrs or {}),
            "device": str(device),
            "torch_version": torch.__version__,
            "data": train.data,
        },
    )
