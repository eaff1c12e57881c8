"""The small circuits several test modules build (one definition each)."""

from biofa import Circuit, E, I, conv, dense


def two_hidden_mlp(rule: str, hidden, **options) -> Circuit:
    """img -> h1 -> h2 -> out, all dense; ``hidden`` = (populations of h1, populations of h2);
    ``rule`` (with ``options``) on every feedback pathway."""
    c = Circuit("mlp")
    c.input("img")
    c.area("h1", *hidden[0])
    c.area("h2", *hidden[1])
    c.readout("out")
    c.connect("img", "h1", dense(flatten=True))
    c.connect("h1", "h2", dense())
    c.connect("h2", "out", dense())
    c.feedback_everywhere(rule, **options)
    return c


def small_ei_cnn(
    rule: str = "feedback_alignment", batch_norm: bool = True, width: int = 6
) -> Circuit:
    """image -> v1 (conv 3x3, E``width`` + I2, max pool) -> h (dense, E12 + I4) -> out."""
    c = Circuit("small")
    c.input("image")
    c.area("v1", E(width), I(2), batch_norm=batch_norm, pool="max")
    c.area("h", E(12), I(4))
    c.readout("out")
    c.connect("image", "v1", conv(3))
    c.connect("v1", "h", dense(flatten=True))
    c.connect("h", "out", dense())
    c.feedback_everywhere(rule)
    return c
