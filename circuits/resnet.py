"""He et al.'s CIFAR ResNets (20/32/44/56/110) with any rule on every feedback pathway.

    python -m biofa.run circuits/resnet.py --set data=digits epochs=1          # smoke test
    python -m biofa.run circuits/resnet.py --set rule=usf norm=biotorch init=xavier_uniform
    python -m biofa.run circuits/resnet.py --set depth=56 shortcut=B ei=true
    python -m biofa.run circuits/resnet.py --sweep --jobs 2

The circuit is :func:`biofa.architectures.cifar_resnet` (``shortcut="A"``: parameter-free,
zero-padded shortcuts as He et al. on CIFAR, BioTorch and the PFA code; ``"B"``: 1x1 conv
projections). ``width`` multiplies the channels (16, 32, 64), ``ei=true`` splits every area into
E and I populations (Dale's law on every weighted projection). The rule keywords (``norm``,
``magnitude``, ``redraw``, ``expansion``, ``b_init``) go to the rules that take them and are
ignored by the others. The default recipe is He et al.'s CIFAR schedule scaled to epochs (SGD
0.1, momentum 0.9, weight decay 1e-4, lr / 10 at 50 % and 75 %, crop + flip); the papers' exact
recipes are in ``circuits/reproduce/``.
"""

from biofa import Circuit, Train, grid
from biofa.architectures import cifar_resnet
from biofa.rules import accepted_options


def circuit(
    rule: str = "backprop",
    depth: int = 20,
    shortcut: str = "A",
    width: float = 1.0,
    ei: bool = False,
    init: str = "he_normal",
    norm: str = "",
    magnitude: str = "",
    redraw: str = "",
    expansion: int = 0,
    b_init: str = "",
) -> Circuit:
    """A CIFAR ResNet of ``depth`` layers with ``rule`` on every pathway (module docstring)."""
    options = accepted_options(
        rule, norm=norm or None, magnitude=magnitude or None, redraw=redraw or None,
        expansion=expansion or None, b_init=b_init or None,
    )  # fmt: skip
    return cifar_resnet(
        depth, rule=rule, rule_options=options, shortcut_option=shortcut, width=width, ei=ei,
        init=init,
    )  # fmt: skip


train = Train(
    data="cifar10",
    augment=True,
    epochs=160,
    batch_size=128,
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    schedule="step",
    milestones=(80, 120),
    gamma=0.1,
    record_every=100,
)

sweep = grid(
    rule=["backprop", "feedback_alignment", "usf", "brsf", "frsf", "kolen_pollack"],
    seed=range(3),
)
