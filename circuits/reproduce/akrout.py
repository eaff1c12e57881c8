"""Akrout, Wilson, Humphreys, Lillicrap & Tweed (2019), "Deep learning without weight transport"
(NeurIPS 32, arXiv:1904.05391): learned feedback -- Kolen-Pollack (KP) and weight mirrors (WM) --
against feedback alignment (FA), sign symmetry (SS) and backprop (BP) in deep residual networks.

    python -m biofa.reproduce akrout --scale smoke
    python -m biofa.reproduce akrout --scale cpu --jobs 2     # under an hour on 2 cores
    python -m biofa.reproduce akrout --scale full             # a GPU

The paper's claim (abstract): on ImageNet (ResNet-18 and ResNet-50) KP and WM "outperform both
feedback alignment and the newer sign-symmetry method, and nearly match backprop". Its Table 1
numbers could not be read here (only the abstract and introduction were available), so the table
lists them as not found and checks the claimed ordering, ``KP ~ WM ~ BP > FA`` (and, where SS
runs, ``KP, WM > SS``); nor is the
ImageNet recipe (TPU, proprietary code) available, and biofa has no ImageNet input pipeline
(random-resized crops), so every scale trains CIFAR-10. The network is He et al.'s CIFAR ResNet-20
with *projection* (option B) shortcuts, as in the paper's ResNets, so KP and WM also learn the
shortcuts' feedback. KP: ``B`` receives ``W``'s own update and the same weight decay
(:mod:`biofa.rules.kolen_pollack`); WM: a mirror phase after every step, noise batch 256,
mirror lr 0.05 (:mod:`biofa.rules.weight_mirror`); SS: Xiao et al.'s sign symmetry,
``B = sign(W) sqrt(2 / (k^2 out))`` (``usf``, ``norm="xiao"``). Recipe (``full``): He et al.'s
CIFAR schedule -- SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, 160 epochs with
lr / 10 at 80 and 120, crop + flip, He-normal init, 45k/5k train/validation split.
"""

from biofa import Circuit, Train
from biofa.architectures import cifar_resnet
from biofa.cli.published import Row, Scale, Table, local_data

OPTIONS = {"usf": {"norm": "xiao"}}


def circuit(rule: str = "backprop", depth: int = 20, width: float = 1.0) -> Circuit:
    """CIFAR ResNet with projection shortcuts and ``rule`` on every pathway."""
    return cifar_resnet(depth, rule=rule, rule_options=OPTIONS.get(rule), width=width,
                        shortcut_option="B", name=f"akrout_resnet{depth}")  # fmt: skip


train = Train(
    data=local_data("cifar10-jpeg.zip", "cifar10"),
    augment=True,
    validation=5000,
    epochs=160,
    batch_size=128,
    optimizer="sgd",
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    schedule="step",
    milestones=(80, 120),
    gamma=0.1,
    record_every=390,
)

table = Table(
    title="Akrout et al. (2019): Kolen-Pollack and weight mirrors vs feedback alignment, "
    "top-1 test accuracy (%)",
    source="Akrout et al. (2019), NeurIPS, arXiv:1904.05391 -- Table 1 (ImageNet) not found; "
    "the claim is the abstract's",
    metric="accuracy",
    rows=[
        Row("BP", None, rule="backprop"),
        Row("FA", None, rule="feedback_alignment"),
        Row("KP", None, rule="kolen_pollack"),
        Row("WM", None, rule="weight_mirror"),
        Row("SS", None, rule="usf"),
    ],
    claims=["KP, WM ~ BP", "KP ~ WM", "KP, WM, BP > FA", "KP, WM > SS"],
    scales={
        "smoke": Scale(
            seeds=1,
            rows=("BP", "FA", "KP", "WM"),
            set={
                "data": "digits",
                "width": 0.25,
                "validation": 100,
                "epochs": 1,
                "max_steps": 2,
                "record_every": 1,
                "milestones": (),
            },
            note="plumbing only: digits, width 0.25, 2 steps",
        ),
        "cpu": Scale(
            seeds=3,
            rows=("BP", "FA", "KP", "WM"),
            approx=3.0,
            set={
                "train_subset": 10000,
                "validation": 1000,
                "epochs": 8,
                "milestones": (4, 6),
                "width": 0.5,
                "record_every": 50,
            },
            note="ResNet-20 (option B) at width 0.5 (8/16/32 channels), a fixed stratified "
            "10,000 of the 49,000 training images left after a 1,000-image validation "
            "split, 8 epochs (624 steps of 128) with lr / 10 at epochs 4 and 6 (He et al.'s "
            "80/120 of 160, scaled), the full 10,000-image test set; SS is left out.",
        ),
        "full": Scale(
            seeds=3,
            note="CIFAR-10 ResNet-20 with He et al.'s schedule (not the "
            "paper's ImageNet recipe, which is not available)",
        ),
    },
)
sweep = table.sweep()
