"""Liao, Leibo & Poggio (2016), "How important is weight symmetry in backpropagation?".

A small conv net (three conv areas of ``width``, ``width``, ``2 width`` channels, 5x5 kernels,
ReLU, max pooling, global average pooling, dense readout; Liao et al. used nets of this kind on
each of their 15 data sets) trained by backprop (BP), uniform sign-concordant feedback (uSF),
batchwise (brSF) and fixed (frSF) random-magnitude sign-concordant feedback, and random feedback
(feedback alignment, their "RndF"), each with and without batch normalisation and with SGD or
Batch Manhattan (``optimizer=manhattan``: the update is ``lr * sign(batch gradient)``). Their
findings: the magnitudes of the feedback weights hardly matter, their signs do, and batch norm
and/or Batch Manhattan is indispensable for the asymmetric rules.

    python -m biofa.run circuits/sign_symmetry.py                        # uSF + batch norm, digits
    python -m biofa.run circuits/sign_symmetry.py --sweep                # the whole comparison
    python -m biofa.run circuits/sign_symmetry.py --set rule=usf_flipped # every feedback sign wrong
    python -m biofa.run circuits/sign_symmetry.py --set concordance=0.5  # half the signs wrong
    python -m biofa.run circuits/sign_symmetry.py --set data=cifar10 width=64 epochs=60 augment=true

``norm`` and ``concordance`` apply to the sign-concordant rules (usf, brsf, frsf; ``norm`` also to
usf_flipped) and are ignored by the others.
"""

from biofa import Circuit, Train, Units, conv, dense
from biofa.cli.sweep import grid

SIGN_RULES = ("usf", "brsf", "frsf", "usf_flipped")


def circuit(
    rule: str = "usf",
    batch_norm: bool = True,
    width: int = 32,
    norm: str = "none",
    concordance: float = 1.0,
) -> Circuit:
    """Three 5x5 conv areas (``batch_norm`` after each) and a dense readout."""
    c = Circuit("sign_symmetry")
    c.input("image")
    c.area("c1", Units(width), batch_norm=batch_norm, pool="max")
    c.area("c2", Units(width), batch_norm=batch_norm, pool="max")
    c.area("c3", Units(2 * width), batch_norm=batch_norm, pool="global_avg")
    c.readout("out")
    c.connect("image", "c1", conv(5))
    c.connect("c1", "c2", conv(5))
    c.connect("c2", "c3", conv(5))
    c.connect("c3", "out", dense())
    options: dict = {}
    if rule in SIGN_RULES:
        options["norm"] = norm
        if rule != "usf_flipped" and concordance != 1.0:
            options["concordance"] = concordance
    if rule != "backprop":
        c.feedback_everywhere(rule, **options)
    return c


train = Train(data="digits", epochs=8, batch_size=32, lr=0.05, momentum=0.9, record_every=10)

_RULES = ["backprop", "usf", "brsf", "frsf", "feedback_alignment"]
sweep = (
    grid(rule=_RULES, batch_norm=[True, False], optimizer="sgd", lr=0.05, seed=range(3))
    + grid(rule=_RULES, batch_norm=[True, False], optimizer="manhattan", lr=2e-4, seed=range(3))
    + grid(rule="usf_flipped", batch_norm=True, optimizer="sgd", lr=0.05, seed=range(3))
)
