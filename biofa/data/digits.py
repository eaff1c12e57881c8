"""``"digits"``: scikit-learn's 1797 embedded 8x8 handwritten digits (no download).

Images are float32 in [0, 1] (the 0..16 counts / 16), split 1437 training / 360 test images,
stratified, the same split for every run: test examples per class follow the class frequencies
(largest-remainder rounding of 360, ties to the lower class); within a class, the examples whose
BLAKE2b hash of their index (4 bytes, little-endian) sorts first go to the test split
(:func:`biofa.data.selection.stratified_choice` without a salt). Both splits keep the original
order. Registered like any user's data set (:func:`biofa.data.register_dataset`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from biofa.data.memory import InMemoryDataSet
from biofa.data.registry import register_dataset
from biofa.data.selection import stratified_choice

__all__ = ["load_digits"]

_TEST = 360  # of 1797 digits; 1437 remain for training


def load_digits(root: str = "") -> InMemoryDataSet:
    """The embedded digits with their fixed split (module docstring); ``root`` is unused."""
    # the CSV that load_digits() reads, without importing sklearn (saves ~1.5 s per run)
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec else None
    if csv is not None and csv.is_file():
        table = np.loadtxt(csv, delimiter=",")
        images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    else:  # pragma: no cover - layout of a future scikit-learn
        from sklearn.datasets import load_digits as sklearn_digits

        images, target = sklearn_digits(return_X_y=True)
        images = images.reshape(-1, 8, 8)
    x = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(target.astype(np.int64))
    is_test = stratified_choice(y, _TEST)
    classes = [str(k) for k in range(10)]
    return InMemoryDataSet.from_tensors(
        "digits", x[~is_test], y[~is_test], x[is_test], y[is_test], classes
    )


register_dataset(
    "digits",
    load_digits,
    description="scikit-learn's 8x8 digits, embedded: 1437 training / 360 test images, 10 classes",
)
