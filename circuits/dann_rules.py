"""Every feedback rule on the three networks of ``circuits/dann_mlp.py`` -- unconstrained units,
column E/I and a Dale's ANN -- on Fashion-MNIST: the table no paper has.

    python -m biofa.run circuits/dann_rules.py --sweep --batch-seeds --jobs 2 \\
        --set data_root=/path/to/zips \\
        --out runs/dann_rules

The networks are ``circuits/dann_mlp.py``'s (``circuit`` below is that file's), smaller so that
the sweep runs on a CPU: 3 hidden areas of ``width`` units (DANN and column E/I: ``width`` E +
``width / 10`` I), plain SGD, batch 32, each model with the authors' backprop learning rate, the
same for every rule (a rule is not tuned on its own here); one epoch of a fixed stratified 15,000
of the 60,000 training images (469 steps), the full test set, so that the 99 runs fit a 2-core CPU
in about 15 minutes with ``--batch-seeds``. Recorded every 100 steps: test
accuracy, the feedback angle (``B`` vs ``W``) and the error angle (the delivered error vs
backprop's) per projection. ``docs/populations.md`` has the table and how it was made
(``python analyses/dann_tables.py rules runs/dann_rules``).
"""

import importlib.util
from pathlib import Path

from biofa import Train, grid

_file = Path(__file__).with_name("dann_mlp.py")
_loader = importlib.util.spec_from_file_location("_biofa_dann_mlp", _file)
_mlp = importlib.util.module_from_spec(_loader)
_loader.loader.exec_module(_mlp)  # registers the pixel data sets too

LR = _mlp.LR
RULES = [
    "backprop", "feedback_alignment", "direct_feedback_alignment", "usf", "brsf", "frsf",
    "kolen_pollack", "weight_mirror", "product_fa", "ekdaa", "dale_feedback",
]  # fmt: skip


def circuit(
    model: str = "dann",
    rule: str = "feedback_alignment",
    width: int = 100,
    interneurons: int = 10,
    layers: int = 3,
    inputs: int = 784,
) -> _mlp.Circuit:
    """``circuits/dann_mlp.py``'s ``model`` with ``rule`` on every pathway."""
    return _mlp.circuit(model, rule, width, interneurons, layers, inputs)


train = Train(
    data="fashion_mnist_pixels", epochs=1, train_subset=15000, batch_size=32, optimizer="sgd",
    lr=LR["dann"], momentum=0.0, record_every=100, device="cpu",
)  # fmt: skip

sweep = (
    grid(model="dann", lr=LR["dann"], rule=RULES, seed=range(3))
    + grid(model="column_ei", lr=LR["column_ei"], rule=RULES, seed=range(3))
    + grid(model="mlp", lr=LR["mlp"], rule=RULES, seed=range(3))
)
