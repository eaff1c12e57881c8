"""What the rate model computes for a batch: pre-activations, activations, delivered errors.

The delivered error of an area is the error that reaches its *output* on the way back, as the
compiled circuit's own backward computes it (its rules' ``effective_feedback``, direct pathways'
``deliver``), for the cross-entropy loss summed over the batch, so that the readout's error is

.. math:: e = \\mathrm{softmax}(z) - \\mathrm{onehot}(t)

per image. It is read with autograd from the real model, independently of how the spiking
back-end builds its feedback pathways, so comparing the two checks the translation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from biofa.nn import CompiledCircuit


@dataclass
class RateTrace:
    """Per-area arrays for ``N`` images (float64 numpy).

    Attributes
    ----------
    pre
        Area -> ``(N, n)`` pre-activation :math:`a = Wx + b` (hidden areas and the readout).
    act
        Area -> ``(N, n)`` activation :math:`h = f(a)`; for the readout, the logits. For an area
        computed population by population (:class:`~biofa.nn.staged.StagedArea`) both hold
        every population in channel order, local interneurons included (its *output* may leave
        them out: :func:`biofa.circuit.wiring.output_spans`).
    error
        Hidden area -> ``(N, n)`` error delivered to its output, :math:`\\partial L / \\partial h`.
    output_error
        ``(N, classes)``: :math:`e = \\mathrm{softmax}(z) - \\mathrm{onehot}(t)`.
    readout
        Name of the readout area.
    """

    pre: dict[str, np.ndarray]
    act: dict[str, np.ndarray]
    error: dict[str, np.ndarray]
    output_error: np.ndarray
    readout: str

    @property
    def logits(self) -> np.ndarray:
        return self.act[self.readout]


def probe(
    model: CompiledCircuit,
    x: torch.Tensor,
    targets: torch.Tensor | None = None,
    batch_size: int = 512,
) -> RateTrace:
    """Run ``model`` on normalised inputs ``x`` (and back from ``targets``, default: argmax)."""
    model_was_training = model.training
    model.eval()
    parts: list[RateTrace] = []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            tb = None if targets is None else targets[start : start + batch_size]
            parts.append(_probe_batch(model, xb, tb))
    finally:
        model.train(model_was_training)
    return RateTrace(
        *(_concat([getattr(p, f) for p in parts]) for f in ("pre", "act", "error")),
        np.concatenate([p.output_error for p in parts]),
        model.readout,
    )


def _concat(dicts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([d[k] for d in dicts]) for k in dicts[0]}


def _probe_batch(
    model: CompiledCircuit, x: torch.Tensor, targets: torch.Tensor | None
) -> RateTrace:
    pre: dict[str, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}

    def hook(name):
        def capture(module, inputs, output):
            a, bias_added = inputs[0], inputs[1]
            if module.bias is not None and not bias_added:
                a = a + module.bias.view(1, -1, *([1] * (a.dim() - 2)))
            pre[name], out[name] = a.detach(), output

        return capture

    def staged(name):
        def capture(module, inputs, output):
            parts = [seen.pop((name, p)) for p in module.spans]
            pre[name] = torch.cat([a for a, _ in parts], dim=1).detach()
            act[name], out[name] = torch.cat([h for _, h in parts], dim=1).detach(), output

        return capture

    seen: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
    act: dict[str, torch.Tensor] = {}
    handles, restore = [], []
    for n, m in model.areas.items():
        if getattr(m, "staged", False):  # each population's a and f(a), where f is applied
            restore.append((m, dict(m.activations)))
            for pop, f in list(m.activations.items()):
                m.activations[pop] = _recording(f, n, pop, seen)
            handles.append(m.register_forward_hook(staged(n)))
        else:
            handles.append(m.register_forward_hook(hook(n)))
    try:
        with torch.enable_grad():
            logits = model(x.to(next(model.parameters()).device))
            t = logits.argmax(1) if targets is None else targets.to(logits.device).long()
            loss = F.cross_entropy(logits, t, reduction="sum")
            hidden = [n for n in out if n != model.readout]
            grads = torch.autograd.grad(loss, [logits] + [out[n] for n in hidden])
    finally:
        for h in handles:
            h.remove()
        for m, activations in restore:
            m.activations.update(activations)

    def np64(t: torch.Tensor) -> np.ndarray:
        return t.detach().flatten(1).double().cpu().numpy()

    return RateTrace(
        {n: np64(v) for n, v in pre.items()},
        {n: np64(act.get(n, v)) for n, v in out.items()},
        {n: np64(g) for n, g in zip(hidden, grads[1:], strict=True)},
        np64(grads[0]),
        model.readout,
    )


def _recording(f, area: str, population: str, seen: dict):
    """``f`` (``None``: identity) that also keeps its input and output under ``(area, pop)``."""

    def apply(a: torch.Tensor) -> torch.Tensor:
        h = a if f is None else f(a)
        seen[(area, population)] = (a.detach(), h.detach())
        return h

    return apply
