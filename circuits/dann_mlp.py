"""Dale's ANNs vs an unconstrained MLP vs column E/I: Cornford et al. (ICLR 2021), Figure 2's
comparison, with the authors' configuration (linclab/ltlwdp: 3 hidden layers, plain SGD, batch
32, their learning rates, raw pixels in [0, 1]).

    python -m biofa.run circuits/dann_mlp.py --set data_root=/path/to/zips      # one DANN run
    python -m biofa.run circuits/dann_mlp.py --sweep --jobs 2 --set data_root=...   # the table

``model``:

* ``"dann"``: 500 E + 50 local linear interneurons per hidden layer (only E units project
  onward), subtractive and divisive inhibition, output 10 E + 1 interneuron; the paper's
  initialisation and (``corrected=True``) corrected inhibitory updates
  (:mod:`biofa.circuit.dann`); lr 0.1107 (0.003981 uncorrected).
* ``"mlp"``: 500 unconstrained ReLU units per hidden layer, He-normal; lr 0.2976.
* ``"column_ei"``: biofa's E/I areas as they were before population wiring -- every hidden area
  ``E(500), I(50)``, every unit projecting onward with its population's sign, all to all
  (Cornford et al.'s "ColumnEI"; 550 units, 10:1); lr 0.05273. Its first projection, from the
  pixels, is unconstrained (biofa's default input), which can only help it.

Data: ``mnist_pixels`` / ``fashion_mnist_pixels`` are the ImageFolder zips ``mnist-png.zip`` /
``fashion-mnist-png.zip`` under ``data_root`` (default ``$BIOFA_DATA``), delivered as ``x / 255``
(:func:`biofa.data.pixels`), as the authors train. ``inputs`` is the first layer's fan-in (784:
28 x 28 pixels), which the initialisation and the corrections use.

``rule`` goes on every feedback pathway (``dale_feedback`` with its own 10 % inhibitory feedback
neurons, :data:`RULE_OPTIONS`). A direct rule (``direct_feedback_alignment``) delivers the
readout's error to the E units of each DANN area, which are its output; its interneurons then get
their error from those E units through feedback alignment on the within-area pathway, so that no
synapse transports weights. ``circuits/dann_rules.py`` sweeps every rule over the three models.

The authors train 50 epochs and report the mean test error of the last 5 updates; their
published numbers could not be read here (docs/populations.md). The sweep below is the CPU
schedule: 2 epochs, 3 seeds (see docs/populations.md for the GPU one and the measured table).
"""

from biofa import Circuit, E, I, Train, Units, dense, grid, rules
from biofa.circuit.dann import dann_area, dann_readout
from biofa.data import PixelSet, register_dataset

register_dataset("mnist_pixels", PixelSet("mnist-png.zip"), description="MNIST, x / 255")
register_dataset(
    "fashion_mnist_pixels", PixelSet("fashion-mnist-png.zip"), description="Fashion-MNIST, x / 255"
)
register_dataset("digits_pixels", PixelSet("digits"), description="sklearn digits, unscaled")

#: options a rule's pathways get: dale_feedback's feedback neurons are their own populations, 10 %
#: inhibitory (the readout, whose pathway every circuit has, has no E/I populations)
RULE_OPTIONS = {"dale_feedback": {"inhibitory": 0.1}}

#: the authors' learning rates (exp_configs/test_mnist_*.yaml, from an Orion search)
LR = {"dann": 0.1107, "dann_uncorrected": 0.003981, "mlp": 0.2976, "column_ei": 0.05273}


def circuit(
    model: str = "dann",
    rule: str = "backprop",
    width: int = 500,
    interneurons: int = 50,
    layers: int = 3,
    inputs: int = 784,
    classes: int = 10,
    corrected: bool = True,
    constraint: str = "parametrize",
    sign_norm: str = "none",
) -> Circuit:
    """One of the three models (module docstring), ``rule`` on every feedback pathway;
    ``sign_norm`` is the ``norm`` of a sign-concordant rule (``usf``, ``frsf``, ``brsf``:
    ``"init"`` is Moskovitz et al.'s, ``"none"`` Liao et al.'s unit magnitudes)."""
    c = Circuit(model, constraint=constraint)
    if model == "dann":
        c.input("image", kind="E")  # pixels only excite
        source, fan_in = "image", inputs
        for k in range(1, layers + 1):
            dann_area(
                c, f"h{k}", source, dense(flatten=k == 1), dense(), n_e=width, n_i=interneurons,
                fan_in=fan_in, first=k == 1, corrected=corrected,
            )  # fmt: skip
            source, fan_in = f"h{k}.e", width
        dann_readout(c, "out", source, dense(), dense(), classes=classes, fan_in=fan_in,
                     corrected=corrected)  # fmt: skip
    elif model in ("mlp", "column_ei"):
        c.input("image")
        pops = (Units(width),) if model == "mlp" else (E(width), I(interneurons))
        for k in range(1, layers + 1):
            c.area(f"h{k}", *pops)
            c.connect("image" if k == 1 else f"h{k - 1}", f"h{k}", dense(flatten=k == 1))
        c.readout("out", classes)
        c.connect(f"h{layers}", "out", dense())
    else:
        raise ValueError(f"model={model!r} is not one of dann, mlp, column_ei")
    options = dict(RULE_OPTIONS.get(rule, {}))
    if sign_norm != "none":
        if "norm" not in rules.get(rule).defaults:
            raise ValueError(f"sign_norm={sign_norm!r}: rule {rule!r} has no norm option")
        options["norm"] = sign_norm
    if rule != "backprop":
        c.feedback_everywhere(rule, **options)
        if model == "dann" and issubclass(rules.get(rule), rules.DirectFeedbackRule):
            for area in [*(f"h{k}" for k in range(1, layers + 1)), "out"]:
                c.feedback(f"{area}.e", f"{area}.i", rule="feedback_alignment")
    return c


train = Train(
    data="mnist_pixels", epochs=2, batch_size=32, optimizer="sgd", lr=LR["dann"], momentum=0.0,
    record_every=1000, device="cpu",
)  # fmt: skip

sweep = (
    grid(model="dann", lr=LR["dann"], data=["mnist_pixels", "fashion_mnist_pixels"], seed=range(3))
    + grid(model="mlp", lr=LR["mlp"], data=["mnist_pixels", "fashion_mnist_pixels"], seed=range(3))
    + grid(model="column_ei", lr=LR["column_ei"], data=["mnist_pixels", "fashion_mnist_pixels"],
           seed=range(3))
)  # fmt: skip
