"""Bad population-level declarations: one line naming the thing at fault, at declaration or
check time (before any tensor exists); through the command line, `biofa: error: ...`, exit 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from biofa import Circuit, E, I, Units, compile, conv, dense, identity
from biofa.circuit.init import row_mean


def base() -> Circuit:
    c = Circuit("bad")
    c.input("img")
    c.area("v1", E(4, "pyr"), I(2, "pv"))
    c.area("v2", E(4, "pyr"), I(2, "pv"), Units(2, "u"))
    c.readout("out")
    c.connect("img", "v1", conv(3))
    return c


CASES = {
    "unknown population": (
        lambda c: c.connect("v1.sst", "v2", conv(3)),
        "unknown population 'v1.sst' (populations of 'v1': pyr, pv)",
    ),
    "unknown population in a pathway": (
        lambda c: c.feedback("v2.chandelier", "v1", rule="feedback_alignment"),
        "unknown population 'v2.chandelier'",
    ),
    "cycle": (
        lambda c: (c.connect("v2.pv", "v2.pyr", dense()), c.connect("v2.pyr", "v2.pv", dense())),
        "area 'v2': its populations form a cycle (v2.pyr -> v2.pv -> v2.pyr)",
    ),
    "p zero": (
        lambda c: c.connect("v1", "v2", conv(3, p=0)),
        "conv(p=0): p=0 must be a number in (0, 1]",
    ),
    "p above one": (lambda c: dense(p=1.5), "dense(p=1.5): p=1.5 must be a number in (0, 1]"),
    "mask and p": (lambda c: dense(p=0.5, mask=[[1]]), "give a connection probability p or a mask"),
    "E inhibits": (
        lambda c: c.connect("v2.pyr", "v2.pv", dense(), mode="divisive"),
        "declares population 'v2.pyr' to inhibit, but it is excitatory (E)",
    ),
    "Units inhibit": (
        lambda c: c.connect("v2.u", "v2.pyr", dense(), mode="subtractive"),
        "needs an inhibitory source population (I); 'v2.u' is Units",
    ),
    "unknown mode": (
        lambda c: c.connect("v2.pv", "v2.pyr", dense(), mode="shunt"),
        "mode='shunt' is not one of subtractive, divisive, subtractive+divisive",
    ),
    "mode on identity": (
        lambda c: c.connect("v1", "v2", identity(), mode="divisive"),
        "mode='divisive' needs a weighted projection",
    ),
    "mode from the input": (
        lambda c: c.connect("img", "v2", conv(3), mode="divisive"),
        "the input area does not inhibit",
    ),
    "gain without division": (
        lambda c: c.connect("v2.pv", "v2.pyr", dense(), shunt_gain=2.0),
        "shunt_gain and shunt_lr_scale are for divisive inhibition",
    ),
    "identity between populations": (
        lambda c: c.connect("v1.pyr", "v2.pyr", identity()),
        "identity projections connect whole areas",
    ),
    "within an area, whole": (
        lambda c: c.connect("v2", "v2.pyr", dense()),
        "connects two of its populations",
    ),
    "overlap": (
        lambda c: (c.connect("v1", "v2", conv(3)), c.connect("v1.pyr", "v2.pv", conv(3))),
        "projection v1->v2 already connects v1.pyr to v2.pv",
    ),
    "duplicate names": (
        lambda c: c.area("v3", E(4), E(2)),
        "area 'v3': two populations are named 'E'",
    ),
    "dot in an area name": (lambda c: c.area("v.3", E(4)), "area name 'v.3' must be"),
    "bad population name": (lambda c: E(3, "a b"), "a population name must be a Python identifier"),
    "row_mean of nothing": (
        lambda c: c.connect("v1", "v2", conv(3), init=row_mean("v1->out")),
        "init=row_mean('v1->out') needs an earlier weighted projection",
    ),
    "lr_scale": (lambda c: c.connect("v1", "v2", conv(3), lr_scale=0), "lr_scale=0 must be"),
    "constraint": (lambda c: Circuit("x", constraint="project"), "constraint='project' is not one"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_declaration_is_one_line_naming_it(case):
    declare, message = CASES[case]
    with pytest.raises(ValueError) as info:
        declare(base())
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_mask_of_the_wrong_shape():
    c = base()
    c.connect("v1.pyr", "v2.pv", conv(3, mask=[[1, 0, 1], [0, 1, 1]]))  # 2 x 3, not 2 x 4
    c.connect("v1", "v2.pyr", conv(3))
    c.connect("v1", "v2.u", conv(3))
    c.connect("v2", "out", dense(flatten=True))
    with pytest.raises(
        ValueError, match=r"projection 'v1.pyr->v2.pv': its mask has shape \(2, 3\)"
    ):
        compile(c, input_shape=(1, 6, 6), num_classes=3)


def test_a_population_without_input():
    c = base()
    c.connect("v1", "v2.pyr", conv(3))
    c.connect("v2", "out", dense(flatten=True))
    with pytest.raises(ValueError, match="population 'v2.pv' receives no projection"):
        compile(c, input_shape=(1, 6, 6), num_classes=3)


def test_two_rules_on_one_projection():
    c = base()
    c.connect("v1", "v2", conv(3))
    c.connect("v2", "out", dense(flatten=True))
    c.feedback("v2.pyr", "v1", rule="feedback_alignment")
    c.feedback("v2.pv", "v1", rule="kolen_pollack")
    with pytest.raises(ValueError, match="projection v1->v2: feedback pathways .* different rules"):
        compile(c, input_shape=(1, 6, 6), num_classes=3)


def test_command_line_says_it_on_one_line(tmp_path):
    spec = tmp_path / "spec.py"
    spec.write_text(
        textwrap.dedent("""
        from biofa import Circuit, E, I, Train, dense

        def circuit():
            c = Circuit("bad")
            c.input("img")
            c.area("h", E(4, "pyr"), I(2, "pv"))
            c.readout("out")
            c.connect("img", "h.sst", dense(flatten=True))
            return c

        train = Train(max_steps=1)
    """)
    )
    run = subprocess.run([sys.executable, "-m", "biofa.run", str(spec), "--out", str(tmp_path)],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert lines == [
        "biofa: error: projection img->h.sst: unknown population 'h.sst' (populations of 'h': "
        "pyr, pv)"
    ]
