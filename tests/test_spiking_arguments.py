"""``biofa.spiking.validate`` refuses bad arguments with one line naming them, before loading data
(for the numbers) and before any Brian2 work (for all)."""

from __future__ import annotations

import importlib

import pytest
import torch

import biofa
from biofa import Circuit, E, I, dense
from biofa.data import InMemoryDataSet, load
from biofa.spiking.validate import validate

validate_module = importlib.import_module("biofa.spiking.validate")  # the package shadows the name


def mlp(classes: int | None = None) -> Circuit:
    c = Circuit("ei_mlp")
    c.input("image", kind="E")
    c.area("h1", E(8), I(2))
    c.readout("out", classes=classes)
    c.connect("image", "h1", dense(flatten=True))
    c.connect("h1", "out", dense())
    c.feedback_everywhere("feedback_alignment")
    return c


@pytest.fixture
def no_brian2_work(monkeypatch):
    """Any translation to Brian2 fails the test: the checks must come first."""

    def translate(*args, **kwargs):
        raise AssertionError("validate started Brian2 work before checking its arguments")

    monkeypatch.setattr(validate_module, "to_brian2", translate)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_images": 0}, ValueError, r"n_images=0 must be a positive integer \(test images"),
        ({"n_images": -5}, ValueError, "n_images=-5 must be a positive integer"),
        ({"n_images": 2.5}, TypeError, "n_images=2.5 must be an integer"),
        ({"n_images": True}, TypeError, "n_images=True must be an integer"),
        ({"copies": 0}, ValueError, r"copies=0 must be a positive integer \(copies of the"),
        ({"copies": -1}, ValueError, "copies=-1 must be a positive integer"),
        ({"raster_images": -1}, ValueError, "raster_images=-1 must be an integer >= 0"),
        ({"duration": 0}, ValueError, "duration=0 must be a positive number of seconds"),
        ({"duration": float("nan")}, ValueError, "duration=nan must be a positive number"),
        ({"duration": "0.1"}, TypeError, "duration='0.1' must be a number of seconds"),
        ({"bin_width": -0.005}, ValueError, "bin_width=-0.005 must be a positive number"),
        ({"bin_width": 0.2}, ValueError, r"bin_width=0.2 s must be at most duration=0.1 s"),
        ({"duration": 0.01}, ValueError, r"settle=0.02 s must be in \[0, duration=0.01 s\)"),
        ({"settle": 0.1}, ValueError, r"settle=0.1 s must be in \[0, duration=0.1 s\)"),
    ],
)
def test_bad_numbers_are_refused_before_the_data_is_even_loaded(
    no_brian2_work, kwargs, error, message
):
    # a data set name that does not exist: loading it first would raise another error
    with pytest.raises(error, match=f"^validate: {message}") as caught:
        validate(mlp(), "no_such_data_set", **kwargs)
    assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def other_data(digits, shape=(1, 8, 8), classes=10) -> InMemoryDataSet:
    """The digits' first images, reshaped to ``shape`` and labelled into ``classes`` classes."""
    x = digits.test_x[:40].float().reshape(40, -1)[:, : shape[0] * shape[1] * shape[2]]
    y = digits.test_y[:40] % classes
    return InMemoryDataSet(
        name="other",
        train_x=x.reshape(40, *shape),
        train_y=y,
        test_x=x.reshape(40, *shape),
        test_y=y,
        classes=tuple(str(k) for k in range(classes)),
        mean=(0.0,) * shape[0],
        std=(1.0,) * shape[0],
    )


def test_a_model_for_other_images_or_classes_is_refused_naming_both(no_brian2_work, digits):
    model = biofa.compile(mlp(), input_shape=digits.input_shape, num_classes=10)
    shapes = r"inputs of shape \(1, 8, 8\) \(C, H, W\), data 'other' has \(1, 6, 6\); validate it"
    with pytest.raises(ValueError, match=f"^validate: the model takes {shapes}"):
        validate(model, other_data(digits, shape=(1, 6, 6)), n_images=4)
    with pytest.raises(ValueError, match="^validate: the model has 10 classes, data 'other' has 3"):
        validate(model, other_data(digits, classes=3), n_images=4)


def test_a_matching_model_passes_the_checks(no_brian2_work, digits):
    model = biofa.compile(mlp(), input_shape=digits.input_shape, num_classes=10)
    with pytest.raises(AssertionError, match="Brian2 work"), torch.no_grad():
        validate(model, digits, n_images=4, copies=2, raster_images=0, duration=0.05)
