"""An E/I convolutional circuit: two conv areas and one dense area, each of E and I populations.

The default run trains on the embedded scikit-learn digits (8x8) on a CPU in under a minute:

    python -m biofa.run circuits/ei_cnn.py
    python -m biofa.run circuits/ei_cnn.py --sweep                      # rules x seeds
    python -m biofa.run circuits/ei_cnn.py --set data=cifar10 width=64 epochs=30 augment=true

The default rule is Kolen-Pollack (learned feedback that receives the forward weights' own
updates; its ``B`` keeps each lower population's sign, like ``W``). Measured on digits (8 epochs,
Adam 1e-3, 2 seeds, ~15 s a run on one CPU core): test accuracy 97.6 +- 0.6 % for Kolen-Pollack,
95.7 +- 1.4 % for feedback alignment, 98.6 % for backprop; feedback angles 51 vs 86 degrees (with
Adam the mirror shrinks slowly; ``circuits/kp_vs_fa.py`` uses SGD with decay, where it reaches a
few degrees).

Every outgoing weight of an E population is >= 0 and of an I population <= 0 (Dale's law);
batch norm follows each conv area (Liao et al. 2015 found it indispensable for asymmetric
feedback).
"""

from biofa import Circuit, E, I, Train, conv, dense, grid


def circuit(
    rule: str = "kolen_pollack", width: int = 16, ei_ratio: int = 4, batch_norm: bool = True
) -> Circuit:
    """Areas v1 (``width`` E + ``width/ei_ratio`` I channels), v2 (twice that), it (dense)."""
    inh = max(1, width // ei_ratio)
    c = Circuit("ei_cnn")
    c.input("image")
    c.area("v1", E(width), I(inh), batch_norm=batch_norm)
    c.area("v2", E(2 * width), I(2 * inh), batch_norm=batch_norm, pool="max")
    c.area("it", E(4 * width), I(inh))
    c.readout("out")
    c.connect("image", "v1", conv(3))
    c.connect("v1", "v2", conv(3))
    c.connect("v2", "it", dense(flatten=True))
    c.connect("it", "out", dense())
    if rule != "backprop":
        c.feedback_everywhere(rule)
    return c


train = Train(data="digits", epochs=8, batch_size=32, optimizer="adam", lr=1e-3, record_every=10)

sweep = grid(
    rule=["backprop", "feedback_alignment", "direct_feedback_alignment", "kolen_pollack"],
    seed=range(2),
)
