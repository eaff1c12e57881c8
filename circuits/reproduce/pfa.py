"""Product feedback alignment (Li Ji-An & Benna 2024, arXiv:2405.20594): CIFAR-10 ResNet-20,
backprop, feedback alignment, direct feedback alignment, sign-concordant feedback (SF), PFA and
PFA-o (orthogonal ``B``).

    python -m biofa.reproduce pfa --scale smoke
    python -m biofa.reproduce pfa --scale cpu --jobs 2
    python -m biofa.reproduce pfa --scale full                 # the authors' recipe (a GPU)

Their recipe (github.com/jil095/product_feedback_alignment, ``exp_configs/cifar10_resnet20_sgd``,
5 seeds): BioTorch's CIFAR ResNet-20 with option-A shortcuts, Xavier-uniform init, SGD lr 0.1
(DFA 0.001), momentum 0.9, batch 128, 250 epochs with lr / 10 at 100/150/200, crop + flip,
45k/5k split; weight decay 1e-4, except PFA and PFA-o: 5e-3 in the first epoch, then 1e-4
(``weight_decay_milestones=(1,), weight_decay_gamma=0.02``, applied to ``R`` too). PFA: ``B``
random with variance ``1/K``, intermediate population ``K = 10 x`` the upper area, learned
``R`` drawn Xavier; PFA-o: a square orthogonal ``B`` (expansion 1) -- their
``expand_ratio: "ortho"``. SF is their BioTorch fork's uSF (``norm="biotorch"``).

The published values are *validation* accuracies (their 5k held-out split) at the last epoch,
mean over 5 seeds, read from the vector data of the repository's own figure
(``plotting/figures/resnet20/test_acc.pdf``; the paper's text was not available); biofa reports
test accuracy after the last step. DFA as in :mod:`circuits.reproduce.biotorch`'s note.
"""

from biofa import Circuit, Train
from biofa.architectures import cifar_resnet
from biofa.cli.published import Row, Scale, Table, local_data
from biofa.rules import accepted_options


def circuit(rule: str = "backprop", b_init: str = "random", expansion: int = 10,
            width: float = 1.0) -> Circuit:  # fmt: skip
    """BioTorch's ResNet-20 (option A, Xavier init) with ``rule``; PFA's options."""
    options = accepted_options(rule, norm="biotorch", b_init=b_init, expansion=expansion)
    return cifar_resnet(20, rule=rule, rule_options=options, width=width, init="xavier_uniform",
                        name="pfa_resnet20")  # fmt: skip


train = Train(
    data=local_data("cifar10-jpeg.zip", "cifar10"),
    augment=True,
    validation=5000,
    epochs=250,
    batch_size=128,
    optimizer="sgd",
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    schedule="step",
    milestones=(100, 150, 200),
    gamma=0.1,
    record_every=390,
)

PFA_DECAY = {"weight_decay": 5e-3, "weight_decay_milestones": (1,), "weight_decay_gamma": 0.02}
PLAIN = {"weight_decay": 1e-4, "weight_decay_milestones": (), "weight_decay_gamma": 1.0}
table = Table(
    title="Li Ji-An & Benna (2024), product feedback alignment: CIFAR-10 ResNet-20, top-1 "
    "accuracy (%)",
    source="Li Ji-An & Benna (2024), arXiv:2405.20594; validation accuracy at epoch 249, mean of "
    "5 seeds, from the authors' figure data (jil095/product_feedback_alignment)",
    metric="accuracy",
    rows=[
        Row("BP", 91.42, rule="backprop", lr=0.1, b_init="random", expansion=10, **PLAIN),
        Row("FA", 64.70, rule="feedback_alignment", lr=0.1, b_init="random", expansion=10, **PLAIN),
        Row(
            "DFA",
            30.67,
            rule="direct_feedback_alignment",
            lr=0.001,
            b_init="random",
            expansion=10,
            **PLAIN,
        ),
        Row("SF", 89.97, rule="usf", lr=0.1, b_init="random", expansion=10, **PLAIN),
        Row("PFA", 90.70, rule="product_fa", lr=0.1, b_init="random", expansion=10, **PFA_DECAY),
        Row(
            "PFA-o", 91.31, rule="product_fa", lr=0.1, b_init="orthogonal", expansion=1, **PFA_DECAY
        ),
    ],
    claims=["BP ~ PFA-o ~ PFA >= SF >> FA >> DFA"],
    scales={
        "smoke": Scale(
            seeds=1,
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
            approx=3.0,
            set={
                "train_subset": 10000,
                "validation": 1000,
                "epochs": 10,
                "milestones": (4, 6, 8),
                "width": 0.5,
                "record_every": 50,
            },
            note="as the BioTorch table's cpu scale: width 0.5, 10,000 training images, "
            "10 epochs, lr / 10 at 4/6/8",
        ),
        "full": Scale(seeds=5, tolerance=1.5, approx=1.5, note="the authors' recipe and seeds 0-4"),
    },
)
sweep = table.sweep()
