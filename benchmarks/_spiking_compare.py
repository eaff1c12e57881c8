"""Do biofa's network and the plain Brian2 script compute the same thing? (the benchmark's check)

Both run the same weights on the same images with Brian2 seed 0, but draw their Poisson inputs
differently (biofa: exponential intervals; plain: ``PoissonGroup``, a random number per neuron and
step), so their spikes can only agree within Poisson noise. Per population: the correlation of
each side's spike counts with the rate model's activations, and the difference of their mean
rates in standard errors (``z``, over images: a paired difference, the same images on both
sides); for the readout, agreement of predictions with the rate model and with each other; for
the feedback pathway, the delivered error of each side against the rate model's.
"""

from __future__ import annotations

import math

import numpy as np

#: |z| above this for a population's mean rate, or a correlation/agreement this much apart, fails
Z_LIMIT, GAP_LIMIT = 4.0, 0.02


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(np.corrcoef(a, b)[0, 1])


def compare(biofa: dict, plain: dict, window: float) -> dict:
    """``biofa``: the worker's arrays of ``validate``; ``plain``: the plain script's; ``window``
    the counting window (s). Returns the figures and ``same`` (every check passed)."""
    pops, act = biofa["neuron_population"], biofa["activation"]
    out: dict = {"populations": {}}
    checks = []
    for pop in np.unique(pops):
        b, p = biofa[f"counts/{pop}"], plain[f"counts/{pop}"]
        diff = (p.mean(1) - b.mean(1)) / window  # per image, Hz
        se = diff.std(ddof=1) / math.sqrt(len(diff))
        z = float(diff.mean() / se) if se > 0 else 0.0
        row = {
            "rate_corr_biofa": _corr(b, act[:, pops == pop]),
            "rate_corr_plain": _corr(p, act[:, pops == pop]),
            "mean_rate_biofa_hz": float(b.mean() / window),
            "mean_rate_plain_hz": float(p.mean() / window),
            "z": z,
            "counts_corr": _corr(b, p),
        }
        out["populations"][str(pop)] = row
        checks += [
            abs(z) < Z_LIMIT,
            abs(row["rate_corr_biofa"] - row["rate_corr_plain"]) < GAP_LIMIT,
        ]
    rate_model = biofa["logits"].argmax(1)
    plain_pred = plain["potential"].argmax(1)
    out["readout"] = {
        "agreement_biofa": float(np.mean(biofa["prediction"] == rate_model)),
        "agreement_plain": float(np.mean(plain_pred == rate_model)),
        "agreement_biofa_plain": float(np.mean(plain_pred == biofa["prediction"])),
        "accuracy_biofa": float(np.mean(biofa["prediction"] == biofa["label"])),
        "accuracy_plain": float(np.mean(plain_pred == biofa["label"])),
        "potential_corr": _corr(biofa["potential"], plain["potential"]),
    }
    n = len(rate_model)
    a = out["readout"]
    se = math.sqrt(max(a["agreement_biofa"] * (1 - a["agreement_biofa"]), 1 / n) / n)
    checks.append(abs(a["agreement_biofa"] - a["agreement_plain"]) < max(4 * se, GAP_LIMIT))
    # errors: biofa's positive/negative error rates are every error neuron of the hidden areas in
    # population order; the plain script's counts per error population, in the same order
    order = [str(p) for p in dict.fromkeys(pops)]
    if all(f"counts/{p}.err{s}" in plain for p in order for s in "+-"):
        positive = np.concatenate([plain[f"counts/{p}.err+"] for p in order], 1) / window
        negative = np.concatenate([plain[f"counts/{p}.err-"] for p in order], 1) / window
        wanted = biofa["error_rate_model"]
        out["error"] = {
            "corr_biofa": _corr(biofa["error_positive"] - biofa["error_negative"], wanted),
            "corr_plain": _corr(positive - negative, wanted),
        }
        checks.append(abs(out["error"]["corr_biofa"] - out["error"]["corr_plain"]) < GAP_LIMIT)
    out["same"] = bool(all(checks))
    return out
