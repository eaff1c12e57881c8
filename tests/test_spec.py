"""Spec loading, ``--set`` type conversion and sweep expansion, with a fake circuit."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any, Literal

import pytest

import biofa.rules
from biofa.cli.names import coord_value, run_name
from biofa.cli.spec import (
    BadValue,
    convert,
    load_spec,
    parse_overrides,
    resolve,
    run_points,
)
from biofa.cli.sweep import Grid, grid
from biofa.train.config import Train

FAKE_CIRCUIT = """
from biofa import Circuit, Units, dense
from biofa.cli.sweep import grid
from biofa.train.config import Train


def FakeCircuit(name, rule=None, bad=False):
    \"\"\"A tiny real circuit; ``rule`` is only a coordinate (the fake rules are not registered),
    without one the circuit declares feedback alignment on its readout pathway.\"\"\"
    c = Circuit(name)
    c.input("img")
    c.area("v1", Units(2))
    c.readout("out")
    if not bad:
        c.connect("img", "v1", dense(flatten=True))
    c.connect("v1", "out", dense())
    if rule is None:
        c.feedback("out", "v1", rule="feedback_alignment")
    return c
"""


def write_spec(tmp_path: Path, body: str, name: str = "toy", header: str = FAKE_CIRCUIT) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(header + textwrap.dedent(body))
    return path


TOY = """
def circuit(width: int = 8, rule: str = "backprop", bad: bool = False, sizes=(100, 50),
            act: Literal["relu", "tanh"] = "relu", scale=1.0, tag: str | None = None):
    return FakeCircuit("toy", rule, bad)

train = Train(epochs=3)
sweep = grid(rule=["backprop", "fa"], seed=range(2))
"""


@pytest.fixture(autouse=True)
def fake_rules(monkeypatch):
    monkeypatch.setattr(biofa.rules, "available", lambda: ["backprop", "fa", "usf"])


@pytest.fixture
def toy(tmp_path):
    return load_spec(write_spec(tmp_path, "from typing import Literal\n" + TOY))


# --- grid -----------------------------------------------------------------------------------


def test_grid_order_len_and_concat():
    g = grid(rule=["a", "b"], seed=range(3))
    assert len(g) == 6
    assert list(g)[:4] == [
        {"rule": "a", "seed": 0},
        {"rule": "a", "seed": 1},
        {"rule": "a", "seed": 2},
        {"rule": "b", "seed": 0},
    ]
    both = g + grid(rule="usf", lr=[0.1, 0.2])  # a string is one value
    assert len(both) == 8
    assert both[6] == {"rule": "usf", "lr": 0.1}
    assert both.keys() == ["rule", "seed", "lr"]
    assert len(g + [{"seed": 9}]) == 7 and len([{"seed": 9}] + g) == 7
    assert list(grid(milestones=[(1, 2)])) == [{"milestones": (1, 2)}]
    assert list(grid()) == [{}]


def test_grid_errors():
    with pytest.raises(ValueError, match="axis 'seed' has no values"):
        grid(seed=[])
    with pytest.raises(TypeError, match="sweep point 0"):
        Grid([3])


# --- conversion -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, tp, expected",
    [
        ("3", int, 3),
        (" 7 ", int, 7),
        (4, int, 4),
        ("1e-3", float, 1e-3),
        ("0.5", float, 0.5),
        (2, float, 2.0),
        ("TRUE", bool, True),
        ("yes", bool, True),
        ("1", bool, True),
        ("no", bool, False),
        ("0", bool, False),
        ("False", bool, False),
        (True, bool, True),
        ("hi", str, "hi"),
        ("", str, ""),
        ("100,150", tuple[int, ...], (100, 150)),
        ("", tuple[int, ...], ()),
        ("(1, 2)", tuple[int, ...], (1, 2)),
        ("5,", tuple[int, ...], (5,)),
        ([1, 2], tuple[int, ...], (1, 2)),
        ("3,x", tuple[int, str], (3, "x")),
        ("0.5,1", list[float], [0.5, 1.0]),
        ("none", int | None, None),
        ("None", int | None, None),
        (None, int | None, None),
        ("4", int | None, 4),
        ("tanh", Literal["relu", "tanh"], "tanh"),
        ("2", Literal[1, 2], 2),
        ("a/b", Path, Path("a/b")),
        ("anything", Any, "anything"),
    ],
)
def test_convert(value, tp, expected):
    result = convert(value, tp)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "value, tp",
    [
        ("abc", int),
        ("1.5", int),
        (1.5, int),
        (True, int),
        ("x", float),
        (True, float),
        ("maybe", bool),
        (1, bool),
        (3, str),
        ("1,a", tuple[int, ...]),
        (5, tuple[int, ...]),
        ("1,2,3", tuple[int, str]),
        ("x", int | None),
        ("sigmoid", Literal["relu", "tanh"]),
    ],
)
def test_convert_rejects(value, tp):
    with pytest.raises(BadValue):
        convert(value, tp)


def test_resolve_types_from_annotations_defaults_and_train(toy):
    kwargs, train = resolve(
        toy,
        {"width": "16", "sizes": "3,4", "act": "tanh", "scale": "2", "tag": "none"}
        | {"lr": "1e-3", "milestones": "100,150", "augment": "yes", "epochs": "5"},
    )
    assert kwargs == {
        "width": 16,
        "rule": "backprop",
        "bad": False,
        "sizes": (3, 4),
        "act": "tanh",
        "scale": 2.0,
        "tag": None,
    }
    assert (train.lr, train.milestones, train.augment, train.epochs) == (1e-3, (100, 150), True, 5)
    assert train.batch_size == toy.train.batch_size  # untouched fields come from the spec
    assert resolve(toy, {"width": 32, "lr": 1})[1].lr == 1.0  # non-strings: type-checked


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("epochs", "abc", "--set epochs=abc: expected int"),
        ("lr", "fast", "--set lr=fast: expected float"),
        ("augment", "maybe", "--set augment=maybe: expected bool"),
        ("milestones", "1,x", "--set milestones=1,x: expected comma-separated ints"),
        ("act", "sigmoid", "--set act=sigmoid: expected one of 'relu', 'tanh'"),
        ("width", "1.5", "--set width=1.5: expected int"),
        ("tag", 3, "tag=3: expected str or none, got int"),
        ("epochs", "0", "Train.epochs must be positive"),
        (
            "rule",
            "nope",
            "--set rule=nope: unknown rule 'nope'; available rules: backprop, fa, usf",
        ),
    ],
)
def test_resolve_errors(toy, key, value, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        resolve(toy, {key: value})


def test_unknown_key_lists_valid_keys(toy):
    with pytest.raises(ValueError) as info:
        resolve(toy, {"widht": "3"})
    message = str(info.value)
    assert message.startswith("unknown key 'widht' (did you mean 'width'?); valid keys: ")
    assert "circuit: width, rule, bad, sizes, act, scale, tag; Train: data," in message
    assert "epochs" in message and "\n" not in message


def test_string_annotations_and_required_params(tmp_path):
    spec = load_spec(
        write_spec(
            tmp_path,
            """
            def circuit(n: int, *, ratio: "float" = 0.5, rule=None):
                return FakeCircuit("x", rule)
            """,
            header="from __future__ import annotations\n" + FAKE_CIRCUIT,
        )
    )
    assert resolve(spec, {"n": "4", "ratio": "1"})[0] == {"n": 4, "ratio": 1.0, "rule": None}
    with pytest.raises(ValueError, match="circuit\\(\\) needs a value for 'n'"):
        resolve(spec, {})


def test_parse_overrides():
    assert parse_overrides(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ValueError, match="^--set width: expected KEY=VALUE$"):
        parse_overrides(["width"])
    with pytest.raises(ValueError, match="put the spec file before --set"):
        parse_overrides(["circuits/x.py"])
    with pytest.raises(ValueError, match="given twice"):
        parse_overrides(["a=1", "a=2"])


# --- run points -----------------------------------------------------------------------------


def short_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def test_single_point(toy):
    (point,) = run_points(toy, {"width": "32", "seed": "4"})
    assert point.name == "rule-backprop_seed-4_cfg-" + short_sha('{"width": 32}')
    assert point.extra == {"width": 32}
    assert point.coords == {"rule": "backprop", "seed": 4}
    assert point.circuit_kwargs["width"] == 32 and point.train.seed == 4
    assert point.circuit.name == "toy"


def test_sweep_points(toy):
    points = run_points(toy, {"width": "32"}, sweep=True)
    cfg = "_cfg-" + short_sha('{"width": 32}')
    assert [p.name for p in points] == [
        "rule-backprop_seed-0" + cfg,
        "rule-backprop_seed-1" + cfg,
        "rule-fa_seed-0" + cfg,
        "rule-fa_seed-1" + cfg,
    ]
    assert [p.index for p in points] == [0, 1, 2, 3]
    assert points[3].coords == {"rule": "fa", "seed": 1}
    assert all(p.circuit_kwargs["width"] == 32 for p in points)


def test_swept_keys_become_coords(tmp_path):
    spec = load_spec(
        write_spec(
            tmp_path,
            """
            def circuit(width=8):
                return FakeCircuit("x")

            sweep = grid(width=[8, 16], lr=[0.1]) + [{"milestones": (1, 2)}]
            """,
        )
    )
    points = run_points(spec, {}, sweep=True)
    # a key is in the name of the points that set it; every point has every swept coordinate
    assert [p.name for p in points] == [
        "rule-feedback_alignment_seed-0_width-8_lr-0.1",
        "rule-feedback_alignment_seed-0_width-16_lr-0.1",
        "rule-feedback_alignment_seed-0_milestones-1-2",
    ]
    assert points[2].coords["milestones"] == "1,2" and points[2].train.milestones == (1, 2)
    assert points[0].coords == {
        "rule": "feedback_alignment",
        "seed": 0,
        "width": 8,
        "lr": 0.1,
        "milestones": "",
    }


def test_names_differ_exactly_when_the_configuration_differs(toy):
    def name(**overrides):
        (point,) = run_points(toy, {k: str(v) for k, v in overrides.items()})
        return point.name

    assert name() == name(width=8) == name(epochs=5, record_every=7) == "rule-backprop_seed-0"
    names = {name(lr=0.01), name(lr=0.02), name(width=16), name(width=16, lr=0.01), name()}
    assert len(names) == 5
    assert name(lr=0.01) == "rule-backprop_seed-0_cfg-" + short_sha('{"lr": 0.01}')
    assert name(rule="fa", seed=3) == "rule-fa_seed-3"  # coordinates are in the name as such


def test_a_new_sweep_point_renames_no_other_point(tmp_path):
    base = "def circuit(width=8, rule='fa'):\n    return FakeCircuit('x', rule)\n"
    one = load_spec(write_spec(tmp_path, base + "sweep = grid(rule=['fa', 'backprop'])\n", "a"))
    two = load_spec(write_spec(
        tmp_path, base + "sweep = grid(rule=['fa', 'backprop']) + grid(rule='fa', width=16)\n", "b"
    ))  # fmt: skip
    before = [p.name for p in run_points(one, {}, sweep=True)]
    after = [p.name for p in run_points(two, {}, sweep=True)]
    assert after[:2] == before == ["rule-fa_seed-0", "rule-backprop_seed-0"]
    assert after[2] == "rule-fa_seed-0_width-16"


def test_set_of_a_swept_key_selects_sweep_points(toy):
    def kept(**overrides):
        return [p.index for p in run_points(toy, overrides, sweep=True)]

    assert kept(rule="fa") == [2, 3] and kept(seed="1") == [1, 3]
    assert kept(rule="backprop,fa", seed="1") == [1, 3] and kept(rule="fa", lr="0.1") == [2, 3]
    (point,) = run_points(toy, {"rule": "fa", "seed": "1"}, sweep=True)
    assert point.name == "rule-fa_seed-1" and point.coords == {"rule": "fa", "seed": 1}
    with pytest.raises(
        ValueError, match=r"^--set seed=7: no sweep point has seed=7 \(the sweep's values: 0, 1\)"
    ):
        run_points(toy, {"seed": "7"}, sweep=True)
    with pytest.raises(ValueError, match=r"^--set rule=fa,xyz: unknown rule 'xyz'"):
        run_points(toy, {"rule": "fa,xyz"}, sweep=True)
    with pytest.raises(ValueError, match=r"^--set seed=x: expected int"):
        run_points(toy, {"seed": "x"}, sweep=True)


def test_sweep_errors(toy, tmp_path):
    plain = load_spec(write_spec(tmp_path, "def circuit():\n    return FakeCircuit('x')\n", "p"))
    with pytest.raises(ValueError, match="defines no `sweep"):
        run_points(plain, {}, sweep=True)
    bad = """
    def circuit(width: int = 8, bad: bool = False):
        return FakeCircuit("x", "fa", bad)

    sweep = grid(width=[8, "wide"])
    """
    spec = load_spec(write_spec(tmp_path, bad, "b"))
    with pytest.raises(
        ValueError, match=r"^sweep point 1 \(width='wide'\): width='wide': expected int"
    ):
        run_points(spec, {}, sweep=True)
    spec = load_spec(write_spec(tmp_path, bad.replace('"wide"', "9") + "\n", "c"))
    with pytest.raises(ValueError, match=r"^sweep point 0 \(width=8\): area 'v1' receives no"):
        run_points(spec, {"bad": "true"}, sweep=True)
    dup = write_spec(
        tmp_path, "def circuit(w=1):\n    return FakeCircuit('x')\nsweep=[{}, {}]\n", "d"
    )
    with pytest.raises(ValueError, match="sweep points 0 and 1 both have run name"):
        run_points(load_spec(dup), {}, sweep=True)


def test_required_circuit_parameter_from_the_sweep(tmp_path):
    body = "def circuit(n: int):\n    return FakeCircuit('x', 'fa')\nsweep = grid(n=[1, 2])\n"
    spec = load_spec(write_spec(tmp_path, body))
    points = run_points(spec, {"lr": "0.5"}, sweep=True)
    cfg = "_cfg-" + short_sha('{"lr": 0.5}')
    assert [p.name for p in points] == [f"rule-backprop_seed-0_n-{n}{cfg}" for n in (1, 2)]
    assert points[1].circuit_kwargs == {"n": 2} and points[1].train.lr == 0.5
    with pytest.raises(ValueError, match="^circuit\\(\\) needs a value for 'n'"):
        run_points(spec, {})


def test_run_name_and_coord_values():
    assert run_name({"rule": "fa", "seed": 0}) == "rule-fa_seed-0"
    assert run_name({"rule": "a/b c", "lr": 0.001}) == "rule-a-b-c_lr-0.001"
    assert coord_value(True) == "true" and coord_value(None) == "none"
    assert coord_value((100, 150)) == "100,150" and coord_value(3) == 3


# --- loading --------------------------------------------------------------------------------


def test_load_spec(toy, tmp_path):
    assert toy.name == "toy" and toy.train == Train(epochs=3) and len(toy.sweep) == 4
    assert len(toy.sha256) == 64 and "def circuit" in toy.source_text
    assert list(toy.circuit_params)[:2] == ["width", "rule"]
    spec = load_spec(write_spec(tmp_path, "def circuit():\n    return FakeCircuit('x')\n", "bare"))
    assert spec.train == Train() and spec.sweep is None


def test_two_specs_with_one_stem_do_not_clash(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = load_spec(write_spec(tmp_path / "a", "def circuit(x=1):\n    return FakeCircuit('a')\n"))
    two = load_spec(write_spec(tmp_path / "b", "def circuit(y=2):\n    return FakeCircuit('b')\n"))
    assert list(one.circuit_params) == ["x"] and list(two.circuit_params) == ["y"]


@pytest.mark.parametrize(
    "body, message",
    [
        ("def circuit(:\n    pass\n", r"toy\.py:\d+: syntax error: "),
        ("x = 1\ny = undefined_name\n", r"toy\.py:\d+: error while loading the spec: NameError: "),
        ("width = 3\n", r"toy\.py: no circuit\(\) function"),
        (
            "def circuit():\n    pass\ntrain = {'epochs': 1}\n",
            r"`train` must be a Train\(...\), got dict",
        ),
        ("def circuit():\n    pass\nsweep = 3\n", "`sweep` must be a grid"),
        (
            "def circuit():\n    pass\nsweep = grid(sed=[1])\n",
            r"sweep: unknown key 'sed' \(did you mean 'seed'",
        ),
    ],
)
def test_load_errors(tmp_path, body, message):
    with pytest.raises(ValueError, match=message):
        load_spec(write_spec(tmp_path, body))


def test_load_error_line_numbers(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("a = 1\nb = 2\nc = (\n")
    with pytest.raises(ValueError, match=r"bad\.py:3: syntax error: '\(' was never closed"):
        load_spec(path)
    path.write_text("a = 1\nraise RuntimeError('boom')\n")
    with pytest.raises(
        ValueError, match=r"^.*bad\.py:2: error while loading the spec: RuntimeError: boom$"
    ):
        load_spec(path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="^spec file not found: .*nope.py$"):
        load_spec(tmp_path / "nope.py")


def test_a_folder_as_the_spec_says_so(tmp_path):
    (tmp_path / "specs").mkdir()
    with pytest.raises(ValueError, match=r"^.*specs is a folder, not a spec file$"):
        load_spec(tmp_path / "specs")
    write_spec(tmp_path / "specs", "def circuit():\n    return FakeCircuit('x')\n", "one")
    with pytest.raises(
        ValueError, match=r"specs is a folder, not a spec file \(its spec files: .*one\.py\)$"
    ):
        load_spec(tmp_path / "specs")


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "    return 1 / 0\n",
            r"toy\.py:\d+: circuit\(\) raised ZeroDivisionError: division by zero$",
        ),
        (
            "    raise ValueError('width must be even')\n",
            r"toy\.py:\d+: circuit\(\) raised ValueError: width must be even$",
        ),
        ("    return {}['missing']\n", r"toy\.py:\d+: circuit\(\) raised KeyError: 'missing'$"),
        ("    return helper()\n", r"toy\.py:3: circuit\(\) raised RuntimeError: deep$"),
    ],
)
def test_an_exception_in_circuit_names_the_spec_line(tmp_path, body, message):
    text = "def helper():\n    raise RuntimeError('deep')\n\n\ndef circuit():\n" + body
    spec = load_spec(write_spec(tmp_path, text, header="from biofa import Circuit\n"))
    with pytest.raises(ValueError, match=message):
        run_points(spec, {})


def test_declaration_errors_keep_their_message(tmp_path):
    body = "def circuit():\n    c = Circuit('x')\n    c.area('h', Units(0))\n"
    spec = load_spec(write_spec(tmp_path, body, header="from biofa import Circuit, Units\n"))
    with pytest.raises(ValueError, match=r"^Units\(0\): a population needs a positive int size$"):
        run_points(spec, {})
