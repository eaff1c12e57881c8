"""Plain VGG-style conv nets (the kind Liao et al. 2016 and Moskovitz et al. 2018 trained) with
any rule on every feedback pathway.

    python -m biofa.run circuits/vgg.py --set data=digits layout=vgg_xs epochs=1   # smoke test
    python -m biofa.run circuits/vgg.py --set rule=usf norm=init layout=vgg_s
    python -m biofa.run circuits/vgg.py --set layout=vgg16 ei=true rule=feedback_alignment
    python -m biofa.run circuits/vgg.py --sweep

The circuit is :func:`biofa.architectures.vgg`: ``layout`` is one of ``vgg_xs``, ``vgg_s``,
``vgg11``, ``vgg13``, ``vgg16``, ``vgg19`` (3x3 conv areas, 2x2 max pooling, optional batch norm,
``hidden`` dense areas, a dense readout); ``width`` multiplies the channels, ``ei=true`` splits
every area into E and I populations. The rule keywords (``norm``, ``concordance``, ``magnitude``)
go to the rules that take them.
"""

from biofa import Circuit, Train, grid
from biofa.architectures import vgg
from biofa.rules import accepted_options


def circuit(
    rule: str = "backprop",
    layout: str = "vgg11",
    width: float = 1.0,
    batch_norm: bool = True,
    hidden: tuple[int, ...] = (),
    ei: bool = False,
    init: str = "he_normal",
    norm: str = "",
    concordance: float = 1.0,
    magnitude: str = "",
) -> Circuit:
    """A VGG-style circuit with ``rule`` on every pathway (module docstring)."""
    options = accepted_options(
        rule, norm=norm or None, concordance=concordance if concordance != 1.0 else None,
        magnitude=magnitude or None,
    )  # fmt: skip
    return vgg(
        layout, rule=rule, rule_options=options, width=width, batch_norm=batch_norm,
        hidden=hidden, ei=ei, init=init,
    )  # fmt: skip


train = Train(
    data="cifar10",
    augment=True,
    epochs=60,
    batch_size=128,
    lr=0.05,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="cosine",
    record_every=100,
)

sweep = grid(rule=["backprop", "feedback_alignment", "usf", "frsf"], seed=range(3))
