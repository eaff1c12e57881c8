"""EKDAA on Fashion-MNIST (Zee, Ororbia, Mali & Nwogu 2023): a tanh CNN trained by error kernels.

    python -m biofa.run circuits/ekdaa_fashion.py                       # EKDAA, 1 seed
    python -m biofa.run circuits/ekdaa_fashion.py --sweep   # EKDAA, backprop, FA x 3 seeds
    python -m biofa.run circuits/ekdaa_fashion.py --set activation=sign batch_norm=true

The authors' networks: 3x3 "same" convolutions with tanh, 2x2 max pooling, a dense tanh layer of
128 units and a softmax readout, no biases, batch 50, SGD with momentum (their release uses lr 1e-3
on a summed loss, i.e. about 0.05 on biofa's batch-mean loss; momentum 0.85). Convolutions here:
32 -> 32 -> pool -> 64 -> pool (a smaller stack than their 6-layer CIFAR model so a CPU can run it).
``activation="sign"`` is the paper's non-differentiable variant (signum): only EKDAA trains it;
batch norm before the signum keeps pre-activations near the threshold so targets can flip units.

Data: the offline Fashion-MNIST zip next to the repository (``../shared/data``) when present,
else torchvision's ``fashion_mnist`` (downloaded to ``Train.data_root``).
"""

from pathlib import Path

from biofa import Circuit, Train, Units, conv, dense, grid

_ZIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion-mnist-png.zip"
DATA = str(_ZIP) if _ZIP.exists() else "fashion_mnist"


def circuit(
    rule: str = "ekdaa",
    activation: str = "tanh",
    width: int = 32,
    batch_norm: bool = False,
    ekdaa_beta: float = 0.9,
    ekdaa_gamma: float = 0.1,
    ekdaa_init: str = "random",
) -> Circuit:
    """conv(w) -> conv(w) -> pool -> conv(2w) -> pool -> dense 128 -> readout, all ``activation``.

    ``ekdaa_beta`` / ``ekdaa_gamma``: EKDAA's target step and error-kernel rate (``beta``,
    ``gamma`` in the paper; named apart from ``Train.gamma``). ``ekdaa_init="copy"`` starts the
    error kernels at the forward weights, as the authors' release does (weight transport at
    initialisation); the default draws them at random.
    """
    c = Circuit("ekdaa_fashion")
    c.input("image")
    common = {"nonlinearity": activation, "batch_norm": batch_norm, "bias": False}
    c.area("c1", Units(width), **common)
    c.area("c2", Units(width), pool="max", **common)
    c.area("c3", Units(2 * width), pool="max", **common)
    c.area("fc", Units(128), **common)
    c.readout("out")
    c.connect("image", "c1", conv(3))
    c.connect("c1", "c2", conv(3))
    c.connect("c2", "c3", conv(3))
    c.connect("c3", "fc", dense(flatten=True))
    c.connect("fc", "out", dense())
    if rule == "ekdaa":
        c.feedback_everywhere("ekdaa", beta=ekdaa_beta, gamma=ekdaa_gamma, init=ekdaa_init)
    elif rule != "backprop":
        c.feedback_everywhere(rule)
    return c


train = Train(
    data=DATA,
    epochs=2,
    batch_size=50,
    optimizer="sgd",
    lr=0.05,
    momentum=0.85,
    record_every=200,
)

sweep = grid(rule=["ekdaa", "backprop", "feedback_alignment"], seed=range(3))
