"""Learned vs fixed feedback on one E/I CNN: backprop, feedback alignment, Kolen-Pollack, weight
mirrors and product feedback alignment (PFA), all from the same initial forward weights.

    python -m biofa.run circuits/kp_vs_fa.py                  # one run (kolen_pollack, digits)
    python -m biofa.run circuits/kp_vs_fa.py --sweep          # 5 rules x 3 seeds
    python -m biofa.run circuits/kp_vs_fa.py --sweep \
        --set data=../shared/data/mnist-png.zip epochs=2

Areas v1 (``width`` E + ``width/ei_ratio`` I channels) and v2 (twice that), each conv 3x3, batch
norm and 2x2 max pooling, a dense E/I area ``it`` (batch norm too: without it the E/I network is
unstable under SGD with the learned rules) and the readout; Dale's law everywhere. One
training recipe for every rule (SGD with momentum; weight decay 5e-3 in the first epoch, then 1e-4
-- Li Ji-An & Benna's PFA recipe): the learned rules need the decay to pull their feedback onto
``W`` (Kolen-Pollack: ``W - B`` shrinks by ``1 - lr * decay`` per step), and it does not hurt the
others. Weight mirrors learn ``B`` in a mirror phase after every step instead. Feedback tensors
learn with the forward optimiser's settings (``Train.feedback_*`` left at "same").

Measured (MNIST, ``--set data=../shared/data/mnist-png.zip epochs=2``, 3 seeds; test accuracy %
mean +- sd, feedback / update angles in degrees at the last step, mean over projections):

=================== =============== ============ ============ =============== ============
rule                E/I (Dale)      feedback     update       Units           feedback
=================== =============== ============ ============ =============== ============
backprop            98.3 +- 0.2     0            0            98.8 +- 0.2     0
feedback_alignment  96.9 +- 0.6     77           53           97.7 +- 0.4     70
kolen_pollack       98.3 +- 0.1     6            3            98.6 +- 0.1     15
weight_mirror       98.3 +- 0.4     12           8            98.7 +- 0.2     12
product_fa          96.2 +- 0.8     69           44           98.8 +- 0.1     23
=================== =============== ============ ============ =============== ============

Fashion-MNIST (same settings): E/I -- backprop 88.8 +- 0.5, feedback_alignment 82.7 +- 1.4,
kolen_pollack 88.1 +- 0.8, weight_mirror 88.3 +- 1.4, product_fa 77.1 +- 4.1 (74 degrees);
Units -- 90.0 +- 0.6, 87.1 +- 0.7, 90.2 +- 0.1, 90.0 +- 0.3, 90.0 +- 0.2 (21 degrees).

``dale=False`` is the papers' setting; there PFA matches backprop as Li Ji-An & Benna report.
Under Dale's law PFA falls to feedback alignment's level: its learned ``R`` follows the gradient
where the sign-constrained ``W`` cannot (see the ``product_fa`` rule's docstring).
"""

from biofa import Circuit, E, I, Train, Units, conv, dense, grid

#: options each rule's feedback pathways get (the rules' own defaults otherwise)
RULE_OPTIONS = {
    "product_fa": {"expansion": 10},  # intermediate population 10x the upper area (the paper's)
    "weight_mirror": {"every": 1, "batch": 256, "noise": 1.0, "lr": 0.05},
}


def circuit(
    rule: str = "kolen_pollack",
    width: int = 16,
    ei_ratio: int = 4,
    batch_norm: bool = True,
    expansion: int = 10,
    dale: bool = True,
) -> Circuit:
    """The E/I CNN with ``rule`` on every feedback pathway (``expansion``: PFA's ratio).

    ``dale=False`` replaces every E/I pair by one ``Units`` population of the same size (the
    same network without sign constraints, for comparisons with the papers).
    """
    inh = max(1, width // ei_ratio)

    def pops(n_e: int, n_i: int) -> tuple:
        return (E(n_e), I(n_i)) if dale else (Units(n_e + n_i),)

    c = Circuit("kp_vs_fa")
    c.input("image")
    c.area("v1", *pops(width, inh), batch_norm=batch_norm, pool="max")
    c.area("v2", *pops(2 * width, 2 * inh), batch_norm=batch_norm, pool="max")
    c.area("it", *pops(4 * width, inh), batch_norm=batch_norm)
    c.readout("out")
    c.connect("image", "v1", conv(3))
    c.connect("v1", "v2", conv(3))
    c.connect("v2", "it", dense(flatten=True))
    c.connect("it", "out", dense())
    if rule != "backprop":
        options = dict(RULE_OPTIONS.get(rule, {}))
        if rule == "product_fa":
            options["expansion"] = expansion
        c.feedback_everywhere(rule, **options)
    return c


train = Train(
    data="digits",
    epochs=8,
    batch_size=32,
    optimizer="sgd",
    lr=0.02,
    momentum=0.9,
    weight_decay=5e-3,
    weight_decay_milestones=(1,),
    weight_decay_gamma=0.02,
    record_every=50,
)

sweep = grid(
    rule=["backprop", "feedback_alignment", "kolen_pollack", "weight_mirror", "product_fa"],
    seed=range(3),
)
