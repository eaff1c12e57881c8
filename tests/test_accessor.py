"""ds.biofa against plain-numpy hand computations on a small runs Dataset with gaps."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import xarray as xr

import biofa  # noqa: F401  (registers ds.biofa)
from biofa.measure import accessor

NAN = math.nan
STEPS = [5, 10, 15, 20]
# test_accuracy(rule, seed, step): evaluated at steps 10 and 20 only; one run stopped early
ACC = np.array(
    [
        [[NAN, 0.50, NAN, 0.80], [NAN, 0.60, NAN, 0.90], [NAN, 0.40, NAN, 0.70]],  # backprop
        [
            [NAN, 0.30, NAN, 0.60],
            [NAN, 0.20, NAN, NAN],
            [NAN, 0.35, NAN, 0.65],
        ],  # fa (seed 1 stops)
    ]
)
ANGLE = np.arange(2 * 3 * 4 * 2, dtype=float).reshape(2, 3, 4, 2)  # (rule, seed, step, projection)
ANGLE[1, 2, 0, :] = NAN  # a record missing in one run


@pytest.fixture
def ds() -> xr.Dataset:
    return xr.Dataset(
        {
            "test_accuracy": (
                ("rule", "seed", "step"),
                ACC,
                {"long_name": "test accuracy", "units": "1"},
            ),
            "feedback_angle": (
                ("rule", "seed", "step", "projection"),
                ANGLE,
                {"long_name": "angle", "units": "degree"},
            ),
        },
        coords={
            "rule": ["backprop", "feedback_alignment"],
            "seed": [0, 1, 2],
            "step": STEPS,
            "epoch": ("step", [0, 0, 1, 1]),
            "projection": ["a->b", "b->c"],
        },
    )


def last_valid(row: np.ndarray) -> float:
    valid = row[~np.isnan(row)]
    return float(valid[-1]) if valid.size else NAN


def test_final_is_the_last_recorded_value_of_every_run(ds):
    final = ds.biofa.final("test_accuracy")
    assert final.dims == ("rule", "seed")
    expected = [[last_valid(ACC[r, s]) for s in range(3)] for r in range(2)]
    np.testing.assert_array_equal(final.values, expected)
    assert "step" not in final.coords and "epoch" not in final.coords
    assert final.sel(rule="feedback_alignment", seed=1) == 0.20  # stopped early: its last value
    per_projection = ds.biofa.final("feedback_angle")
    assert per_projection.dims == ("rule", "seed", "projection")
    np.testing.assert_array_equal(per_projection.values, ANGLE[:, :, -1, :])


def test_summary_is_mean_sd_n_over_seeds_of_the_final_values(ds):
    out = ds.biofa.summary("test_accuracy")
    for r in range(2):
        finals = np.array([last_valid(ACC[r, s]) for s in range(3)])
        assert out["mean_value"][r] == pytest.approx(finals.mean())
        assert out["sd_value"][r] == pytest.approx(finals.std(ddof=1))
        assert out["n"][r] == 3
    assert out["mean_value"].attrs["units"] == "1"
    # by hand in plain xarray: the last evaluation is at step 20, else at step 10
    final = ds.test_accuracy.isel(step=-1).fillna(ds.test_accuracy.isel(step=1))
    np.testing.assert_allclose(out["mean_value"], final.mean("seed"))


def test_curve_is_mean_and_sd_over_seeds_at_recorded_steps(ds):
    acc = ds.biofa.curve("test_accuracy")
    assert acc.step.values.tolist() == [10, 20]  # never-recorded steps are dropped
    np.testing.assert_allclose(acc["mean_value"].sel(step=10), np.nanmean(ACC[:, :, 1], axis=1))
    np.testing.assert_allclose(
        acc["sd_value"].sel(step=20, rule="backprop"), np.std(ACC[0, :, 3], ddof=1)
    )
    fa20 = ACC[1, [0, 2], 3]  # seed 1 has no value at step 20: two seeds
    fa = acc.sel(step=20, rule="feedback_alignment")
    assert fa.mean_value == pytest.approx(fa20.mean())
    assert fa.sd_value == pytest.approx(fa20.std(ddof=1))
    assert acc["n"].sel(step=20).values.tolist() == [3, 2]

    angle = ds.biofa.curve("feedback_angle")
    assert angle["mean_value"].dims == ("rule", "step", "projection")
    np.testing.assert_allclose(angle["mean_value"], np.nanmean(ANGLE, axis=1))
    np.testing.assert_allclose(angle["sd_value"], np.nanstd(ANGLE, axis=1, ddof=1))
    assert angle["n"].sel(rule="feedback_alignment", step=5).values.tolist() == [2, 2]


def test_steps_to_is_the_first_step_reaching_the_threshold(ds):
    steps = ds.biofa.steps_to(0.6)
    expected = np.full((2, 3), NAN)
    for r in range(2):
        for s in range(3):
            hit = [step for step, a in zip(STEPS, ACC[r, s]) if a >= 0.6]
            expected[r, s] = hit[0] if hit else NAN
    np.testing.assert_array_equal(steps.values, expected)  # NaN: never reached
    assert steps.sel(rule="backprop", seed=1) == 10
    assert steps.attrs["units"] == "1" and "0.6" in steps.attrs["long_name"]
    assert ds.biofa.steps_to(0.6).mean("seed").sel(rule="backprop") == pytest.approx(50 / 3)


def test_methods_take_a_dataarray_and_name_unknown_variables(ds):
    xr.testing.assert_identical(ds.biofa.final(ds.test_accuracy), ds.biofa.final("test_accuracy"))
    with pytest.raises(ValueError, match="no variable 'loss'.*test_accuracy"):
        ds.biofa.summary("loss")


def test_other_swept_keys_stay_dims(ds):
    two = xr.concat([ds, ds.assign(test_accuracy=ds.test_accuracy * 0.5)], dim="lr")
    two = two.assign_coords(lr=[0.1, 0.01])
    out = two.biofa.summary("test_accuracy")
    assert set(out["mean_value"].dims) == {"lr", "rule"}
    np.testing.assert_allclose(out["mean_value"].sel(lr=0.01), 0.5 * out["mean_value"].sel(lr=0.1))


def test_result_variables_do_not_shadow_dataset_attributes(ds):
    summary = ds.biofa.summary("test_accuracy")
    assert list(summary.data_vars) == list(accessor.RESULT_NAMES)
    for name in accessor.RESULT_NAMES:
        assert not hasattr(xr.Dataset, name), name  # ds.mean is a method: the old name was
        assert isinstance(getattr(summary, name), xr.DataArray), name
    np.testing.assert_array_equal(summary.mean_value, summary["mean_value"])
    table = summary.to_dataframe()
    assert list(table.columns) == ["mean_value", "sd_value", "n"]


def test_the_docstring_examples_run_and_show_what_they_say():
    result = doctest.testmod(accessor, raise_on_error=False, report=True)
    assert result.attempted >= 8 and result.failed == 0, result
