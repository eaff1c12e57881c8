"""Moskovitz, Litwin-Kumar & Abbott (2018), "Feedback alignment in deep convolutional networks":
their CIFAR-10 network and the rule x normalisation comparison.

The network is the TensorFlow CIFAR-10 tutorial model the paper uses (their "Arch 1"): two 5x5
conv areas of 64 channels with ReLU and 2x2 max pooling, then dense areas of 384 and 192 units and
a dense readout (no local response normalisation; 32x32 inputs with "same" padding rather than
24x24 crops).

Rules: BP, FA, uSF, brSF, frSF. Normalisation controls:

* ``norm`` (rule side): ``"none"``, ``"init"`` ("Init.": ``B = rms(W(0)) sign(W)``, the
  initialisation's scale) or ``"sn"`` ("SN": ``B = ||W|| sign(W) / ||sign(W)||`` every step);
  see :mod:`biofa.rules._sign_concordant` for the definitions and what we could not confirm.
* ``hold_weight_norms=true`` (``Train``, "Const."): forward-weight norms held at their initial
  values (FA-uSF Const.: 51.2% top-1 on ImageNet in the paper); ``normalize_grads=true`` the
  reading of SN as per-projection gradient normalisation (:mod:`biofa.nn.norms`).
* ``feedback_signs`` (circuit): ``"concordant"`` (the rule as given), ``"dale"`` or
  ``"dale_learned"`` -- every feedback pathway uses ``dale_feedback`` with its own E/I
  presynaptic populations (``inhibitory`` of each upper area's units inhibitory, the rest
  excitatory): each feedback weight has a sign fixed for the run by its source neuron, with fixed
  or Kolen-Pollack-learned magnitudes. The forward areas stay ``Units`` so that only the feedback
  signs change (E/I forward areas would confound the comparison: under forward Dale's law
  ``sign(W)`` is constant along each column and uSF degenerates, see :mod:`biofa.rules.usf`).
  Moskovitz et al. report that fixing feedback signs this way hurts.

    python -m biofa.run circuits/moskovitz_cifar.py --set data=digits epochs=2   # smoke test
    python -m biofa.run circuits/moskovitz_cifar.py                              # uSF SN, CIFAR-10
    python -m biofa.run circuits/moskovitz_cifar.py --set feedback_signs=dale    # fixed E/I signs
    python -m biofa.run circuits/moskovitz_cifar.py --set rule=usf norm=none hold_weight_norms=true
    python -m biofa.run circuits/moskovitz_cifar.py --sweep
"""

from biofa import Circuit, Train, Units, conv, dense
from biofa.cli.sweep import grid

SIGN_RULES = ("usf", "brsf", "frsf", "usf_flipped")
FEEDBACK_SIGNS = ("concordant", "dale", "dale_learned")


def circuit(
    rule: str = "usf",
    norm: str = "sn",
    feedback_signs: str = "concordant",
    width: int = 64,
    inhibitory: float = 0.2,
) -> Circuit:
    """conv5(width)-pool, conv5(width)-pool, dense 384, dense 192, readout."""
    if feedback_signs not in FEEDBACK_SIGNS:
        raise ValueError(
            f"feedback_signs={feedback_signs!r} is not one of {', '.join(FEEDBACK_SIGNS)}"
        )
    c = Circuit("moskovitz_cifar")
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
    if feedback_signs != "concordant":
        learned = feedback_signs == "dale_learned"
        c.feedback_everywhere("dale_feedback", inhibitory=inhibitory, learned=learned)
    elif rule != "backprop":
        c.feedback_everywhere(rule, **({"norm": norm} if rule in SIGN_RULES else {}))
    return c


train = Train(
    data="cifar10",
    augment=True,
    epochs=60,
    batch_size=128,
    lr=0.01,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="cosine",
    record_every=100,
)

_SIGN = ["usf", "brsf", "frsf"]
sweep = (
    grid(rule=["backprop", "feedback_alignment"], seed=range(3))
    + grid(rule=_SIGN, norm=["none", "init", "sn"], seed=range(3))
    + grid(rule=_SIGN, norm="none", hold_weight_norms=True, seed=range(3))  # Const.
    + grid(rule="usf", norm="none", normalize_grads=True, seed=range(3))  # SN as gradient norm
    + grid(rule="usf", norm="sn", feedback_signs=["dale", "dale_learned"], seed=range(3))
)
