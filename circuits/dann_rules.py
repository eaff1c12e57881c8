"""Every feedback rule on the three networks of ``circuits/dann_mlp.py`` -- unconstrained units,
column E/I and a Dale's ANN -- on Fashion-MNIST: the table no paper has.

    python -m biofa.run circuits/dann_rules.py --sweep --batch-seeds --jobs 2 \\
        --set data_root=/path/to/zips --out runs/dann_rules
    python analyses/dann_tables.py rules runs/dann_rules

The networks are ``circuits/dann_mlp.py``'s (``circuit`` below is that file's), smaller so that
the sweep runs on a CPU: 3 hidden areas of ``width`` units (DANN and column E/I: ``width`` E +
``width / 10`` I), plain SGD, batch 32; one epoch of a fixed stratified 15,000 of the training
images (469 steps), the full test set.

One learning rate does not serve every rule (at the authors' backprop rates most rules without
weight transport diverge or stay at chance), so every rule x model runs at six learning rates,
the model's backprop rate (``LR``) times ``LR_SCALES``, 3 seeds each, and the sign-concordant
rules also with ``sign_norm="init"`` (756 runs, about 30 minutes on 2 cores with
``--batch-seeds --jobs 2``). 5,000 training images are held out (``validation``, chosen
before the subset): the table takes, per rule x model, the rate with the best mean final
validation accuracy (a diverged seed counts as chance) and reports the test accuracy and the
angles of that rate's runs, so nothing is selected on the test set. Recorded every 100 steps:
the feedback angle (``B`` vs ``W``) and the error angle (the delivered error vs backprop's) per
projection. ``docs/populations.md`` has the table.
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
    sign_norm: str = "none",
) -> _mlp.Circuit:
    """``circuits/dann_mlp.py``'s ``model`` with ``rule`` on every pathway (``sign_norm``: the
    sign-concordant rules' ``norm``)."""
    return _mlp.circuit(model, rule, width, interneurons, layers, inputs, sign_norm=sign_norm)


train = Train(
    data="fashion_mnist_pixels", epochs=1, train_subset=15000, batch_size=32, optimizer="sgd",
    validation=5000, lr=LR["dann"], momentum=0.0, record_every=100, device="cpu",
)  # fmt: skip

#: learning rates tried, as multiples of each model's backprop rate ``LR[model]``
LR_SCALES = (3.0, 1.0, 0.3, 0.1, 0.03, 0.01)


def rates(model: str) -> list[float]:
    """The learning rates a model's rules are tried at."""
    return [round(LR[model] * k, 6) for k in LR_SCALES]


#: the sign-concordant rules also run with Moskovitz et al.'s ``norm="init"`` (B's entries of
#: ``W(0)``'s rms instead of 1), without which they blow the error up layer by layer
SIGN_RULES = ["usf", "brsf", "frsf"]


def _model_sweep(model: str):
    """Every rule at the model's rates, and the sign-concordant rules again with norm="init"."""
    every = grid(model=model, lr=rates(model), rule=RULES, sign_norm="none", seed=range(3))
    normed = grid(model=model, lr=rates(model), rule=SIGN_RULES, sign_norm="init", seed=range(3))
    return every + normed


sweep = _model_sweep("dann") + _model_sweep("column_ei") + _model_sweep("mlp")
