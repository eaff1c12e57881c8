"""Liao, Leibo & Poggio (2016), "How important is weight symmetry in backpropagation?" (AAAI,
arXiv:1510.05067): sign-concordant feedback (uSF, brSF, frSF), random feedback (RndF), partial
sign concordance, batch normalisation and Batch Manhattan.

    python -m biofa.reproduce liao --scale smoke
    python -m biofa.reproduce liao --scale cpu --jobs 2
    python -m biofa.reproduce liao --scale full

The paper's body could not be read here (only its abstract and introduction): no table value,
architecture or schedule was found, so every published value is "not found" and the claims are
the abstract's findings -- (1) feedback magnitudes do not matter (uSF, brSF, frSF ~ BP with
batch norm), (2) signs do, the more concordant the better (uSF > uSF at 75 % > uSF at 50 %
concordance), (4) without batch norm asymmetric feedback fails (BP-noBN >> uSF-noBN) and Batch
Manhattan restores it (uSF-noBN-BM >> uSF-noBN). The network is the small conv net of
``circuits/sign_symmetry.py`` (three 5x5 conv areas of 32, 32, 64 channels, max pooling, global
average pooling, dense readout) on CIFAR-10 with SGD (lr 0.05, momentum 0.9) or Batch Manhattan
(lr 2e-4: every weight moves by at most that per step; :class:`biofa.train.optim.BatchManhattan`,
weight decay added after the sign as in Xiao et al.'s implementation), a cosine schedule, crop +
flip. Sign-concordant feedback is ``B = sign(W) |M|`` without a scale (``norm="none"``), as
Liao et al. define it.
"""

from biofa import Circuit, Train, Units, conv, dense
from biofa.cli.published import Row, Scale, Table, local_data
from biofa.rules import accepted_options


def circuit(
    rule: str = "usf", batch_norm: bool = True, concordance: float = 1.0, width: int = 32
) -> Circuit:
    """Three 5x5 conv areas (``batch_norm`` after each) and a dense readout."""
    c = Circuit("liao_convnet")
    c.input("image")
    c.area("c1", Units(width), batch_norm=batch_norm, pool="max")
    c.area("c2", Units(width), batch_norm=batch_norm, pool="max")
    c.area("c3", Units(2 * width), batch_norm=batch_norm, pool="global_avg")
    c.readout("out")
    c.connect("image", "c1", conv(5))
    c.connect("c1", "c2", conv(5))
    c.connect("c2", "c3", conv(5))
    c.connect("c3", "out", dense())
    if rule != "backprop":
        c.feedback_everywhere(rule, **accepted_options(
            rule, concordance=concordance if concordance != 1.0 else None))  # fmt: skip
    return c


train = Train(
    data=local_data("cifar10-jpeg.zip", "cifar10"),
    augment=True,
    validation=5000,
    epochs=60,
    batch_size=128,
    lr=0.05,
    momentum=0.9,
    schedule="cosine",
    record_every=100,
)

SGD = {"optimizer": "sgd", "lr": 0.05}
BM = {"optimizer": "manhattan", "lr": 2e-4}


def _row(label, rule, batch_norm=True, concordance=1.0, opt=SGD) -> Row:
    return Row(label, None, rule=rule, batch_norm=batch_norm, concordance=concordance, **opt)


table = Table(
    title="Liao, Leibo & Poggio (2016): how important is weight symmetry? CIFAR-10, top-1 "
    "test accuracy (%)",
    source="Liao et al. (2016), AAAI, arXiv:1510.05067 -- table values not found; the claims "
    "are the abstract's",
    rows=[
        _row("BP", "backprop"),
        _row("uSF", "usf"),
        _row("brSF", "brsf"),
        _row("frSF", "frsf"),
        _row("RndF", "feedback_alignment"),
        _row("uSF-c0.75", "usf", concordance=0.75),
        _row("uSF-c0.5", "usf", concordance=0.5),
        _row("BP-noBN", "backprop", batch_norm=False),
        _row("uSF-noBN", "usf", batch_norm=False),
        _row("uSF-noBN-BM", "usf", batch_norm=False, opt=BM),
    ],
    claims=[
        "uSF, brSF, frSF ~ BP",
        "uSF > uSF-c0.75 > uSF-c0.5",
        "BP-noBN >> uSF-noBN",
        "uSF-noBN-BM >> uSF-noBN",
    ],
    scales={
        "smoke": Scale(
            seeds=1,
            rows=("BP", "uSF", "uSF-c0.5", "uSF-noBN-BM"),
            set={
                "data": "digits",
                "validation": 100,
                "epochs": 1,
                "max_steps": 2,
                "record_every": 1,
                "width": 8,
            },
            note="plumbing only: digits, width 8, 2 steps",
        ),
        "cpu": Scale(
            seeds=3,
            approx=3.0,
            set={"train_subset": 10000, "validation": 1000, "epochs": 8, "record_every": 50},
            note="a fixed stratified 10,000 training images, 8 epochs (632 steps of 128)",
        ),
        "full": Scale(seeds=3, note="CIFAR-10, 60 epochs (the paper's schedule was not found)"),
    },
)
sweep = table.sweep()
