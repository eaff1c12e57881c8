"""Moskovitz, Litwin-Kumar & Abbott (2018), "Feedback alignment in deep convolutional networks"
(arXiv:1812.06488): uniform sign-concordant feedback (uSF) with the paper's normalisation controls
-- "Init." (feedback scaled by the initial weights' scale), "SN" (normalised to the forward
weights' norm at every step), "Const." (forward-weight norms held at their initial values) --
against backprop and feedback alignment, and uSF whose feedback signs are fixed by E/I
populations (Dale's law in the feedback pathway).

    python -m biofa.reproduce moskovitz --scale smoke
    python -m biofa.reproduce moskovitz --scale cpu --jobs 2
    python -m biofa.reproduce moskovitz --scale full

Only the abstract could be read, plus secondary descriptions of the controls (see
``circuits/moskovitz_cifar.py`` and :mod:`biofa.rules._sign_concordant` for the definitions and
what could not be confirmed); no CIFAR-10 or ImageNet number was found (a "51.2 % top-1" for
FA-uSF Const. on ImageNet from a machine-written summary is neither confirmed nor comparable), so
every published value is "not found". Claims: the abstract's -- FA "failed to scale" (BP >> FA)
while a sign-concordant variant with these techniques "can achieve performance competitive with
backpropagation" (uSF-SN ~ BP) -- and the summary's, that fixing feedback signs by E/I
populations hinders learning (uSF-SN >> Dale). Network: their CIFAR-10 "Arch 1" (two 5x5 conv
areas of 64 channels with max pooling, dense 384 and 192, readout), SGD lr 0.01 momentum 0.9,
weight decay 5e-4, cosine schedule, crop + flip.
"""

from biofa import Circuit, Train, Units, conv, dense
from biofa.cli.published import Row, Scale, Table, local_data

SIGN_RULES = ("usf", "brsf", "frsf")


def circuit(rule: str = "usf", norm: str = "sn", dale: bool = False, width: int = 64) -> Circuit:
    """conv5(width)-pool, conv5(width)-pool, dense 384, dense 192, readout."""
    c = Circuit("moskovitz_arch1")
    c.input("image")
    c.area("conv1", Units(width), pool="max")
    c.area("conv2", Units(width), pool="max")
    c.area("fc1", Units(384))
    c.area("fc2", Units(192))
    c.readout("out")
    c.connect("image", "conv1", conv(5))
    c.connect("conv1", "conv2", conv(5))
    c.connect("conv2", "fc1", dense(flatten=True))
    c.connect("fc1", "fc2", dense())
    c.connect("fc2", "out", dense())
    if dale:  # feedback signs fixed by the upper area's E/I populations (20 % inhibitory)
        c.feedback_everywhere("dale_feedback", inhibitory=0.2)
    elif rule != "backprop":
        c.feedback_everywhere(rule, **({"norm": norm} if rule in SIGN_RULES else {}))
    return c


train = Train(
    data=local_data("cifar10-jpeg.zip", "cifar10"),
    augment=True,
    validation=5000,
    epochs=60,
    batch_size=128,
    lr=0.01,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="cosine",
    record_every=100,
)


def _row(label, rule, norm="none", dale=False, const=False) -> Row:
    return Row(label, None, rule=rule, norm=norm, dale=dale, hold_weight_norms=const)


table = Table(
    title="Moskovitz, Litwin-Kumar & Abbott (2018): sign-concordant feedback and its "
    "normalisations, CIFAR-10 Arch 1, top-1 test accuracy (%)",
    source="Moskovitz et al. (2018), arXiv:1812.06488 -- numbers not found; claims from the "
    "abstract and a secondary summary",
    rows=[
        _row("BP", "backprop"),
        _row("FA", "feedback_alignment"),
        _row("uSF", "usf"),
        _row("uSF-Init", "usf", norm="init"),
        _row("uSF-SN", "usf", norm="sn"),
        _row("uSF-Const", "usf", const=True),
        _row("Dale", "usf", norm="sn", dale=True),
    ],
    claims=["BP >> FA", "uSF-SN ~ BP", "uSF-SN >> Dale"],
    scales={
        "smoke": Scale(
            seeds=1,
            rows=("BP", "uSF-SN", "uSF-Const", "Dale"),
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
            set={
                "train_subset": 10000,
                "validation": 1000,
                "epochs": 8,
                "width": 32,
                "record_every": 50,
            },
            note="conv areas of 32 channels, a fixed stratified 10,000 training images, 8 epochs",
        ),
        "full": Scale(seeds=3, note="Arch 1 on CIFAR-10, 60 epochs (their schedule was not found)"),
    },
)
sweep = table.sweep()
