"""A convolutional Dale's ANN (Cornford et al. 2021, appendix B's layer on a small CNN) and the
column-E/I CNN of the same size.

    python -m biofa.run circuits/dann_cnn.py --set data_root=/path/to/zips
    python -m biofa.run circuits/dann_cnn.py --set model=column_ei lr=0.05 data_root=...

Two conv areas (3x3, "same" padding, 2x2 max pooling) and one dense area, each ``E(n)`` plus
``n / ratio`` interneurons, and the readout:

* ``"dann"``: only the E channels project onward; the interneurons of each area are local and
  linear, computed from the E channels below through a 3x3 kernel (``W_IE``) and acting on the
  area's E channels through a 1x1 kernel (``W_EI``), subtractively and divisively at every
  position; the paper's initialisation with ``d = in_channels * 3 * 3`` and corrected inhibitory
  updates (:mod:`biofa.circuit.dann`).
* ``"column_ei"``: the same channels as biofa's E/I areas (every channel projecting onward, all
  to all, with its population's sign).
* ``"cnn"``: unconstrained channels, as many.

Data as for ``circuits/dann_mlp.py`` (raw pixels in [0, 1]); ``image`` is the input's side and
``channels`` its channel count (the initialisation's fan-in). The step-time benchmark of this
circuit against a hand-written PyTorch DANN: ``benchmarks/populations.py``.
"""

from biofa import Circuit, E, I, Train, Units, conv, dense, grid
from biofa.circuit.dann import dann_area, dann_readout
from biofa.data import PixelSet, register_dataset

register_dataset("mnist_pixels", PixelSet("mnist-png.zip"), description="MNIST, x / 255")
register_dataset(
    "fashion_mnist_pixels", PixelSet("fashion-mnist-png.zip"), description="Fashion-MNIST, x / 255"
)
register_dataset("digits_pixels", PixelSet("digits"), description="sklearn digits, unscaled")


def circuit(
    model: str = "dann",
    rule: str = "backprop",
    width: int = 16,
    ratio: int = 4,
    hidden: int = 100,
    image: int = 28,
    channels: int = 1,
    classes: int = 10,
    corrected: bool = True,
    constraint: str = "parametrize",
) -> Circuit:
    """``width`` E channels in v1, twice that in v2, ``hidden`` E units in ``it``; interneurons
    ``1 / ratio`` of each (module docstring)."""
    c = Circuit(f"{model}_cnn", constraint=constraint)
    sizes = {"v1": width, "v2": 2 * width, "it": hidden}
    if model == "dann":
        c.input("image", kind="E")
        source, fan_in, first = "image", channels * 9, True
        for name in ("v1", "v2"):
            n = sizes[name]
            dann_area(c, name, source, conv(3), conv(1), n_e=n, n_i=max(1, n // ratio),
                      fan_in=fan_in, first=first, corrected=corrected, pool="max")  # fmt: skip
            source, fan_in, first = f"{name}.e", n * 9, False
        side = image // 4
        dann_area(c, "it", "v2.e", dense(flatten=True), dense(), n_e=hidden,
                  n_i=max(1, hidden // ratio), fan_in=2 * width * side * side,
                  corrected=corrected)  # fmt: skip
        dann_readout(c, "out", "it.e", dense(), dense(), classes=classes, fan_in=hidden,
                     corrected=corrected)  # fmt: skip
    elif model in ("column_ei", "cnn"):
        c.input("image")
        for name, n in sizes.items():
            inh = max(1, n // ratio)
            pops = (E(n), I(inh)) if model == "column_ei" else (Units(n + inh),)
            c.area(name, *pops, pool="max" if name != "it" else None)
        c.readout("out", classes)
        c.connect("image", "v1", conv(3))
        c.connect("v1", "v2", conv(3))
        c.connect("v2", "it", dense(flatten=True))
        c.connect("it", "out", dense())
    else:
        raise ValueError(f"model={model!r} is not one of dann, column_ei, cnn")
    if rule != "backprop":
        c.feedback_everywhere(rule)
    return c


train = Train(
    data="mnist_pixels", epochs=2, batch_size=32, optimizer="sgd", lr=0.1, momentum=0.0,
    record_every=500, device="cpu",
)  # fmt: skip

sweep = grid(model=["dann", "column_ei", "cnn"], seed=range(2))
