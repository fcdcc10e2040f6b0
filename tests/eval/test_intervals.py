"""Bootstrap intervals over objects: known cases."""

import numpy as np
import pytest

from a3d_core.eval.intervals import bootstrap_difference, bootstrap_mean, category_mean


def test_category_mean_weighs_categories_equally_and_skips_nans():
    values = np.array([1.0, 1.0, 1.0, 0.0, np.nan])
    categories = np.array([0, 0, 0, 1, 1])
    assert category_mean(values, categories) == pytest.approx(0.5)  # not 3/4: categories weigh alike


def test_identical_objects_give_a_zero_width_interval():
    values = np.full(12, 0.7)
    interval = bootstrap_mean(values, np.repeat([0, 1], 6), np.repeat(np.arange(4), 3), resamples=200)
    assert (interval.value, interval.low, interval.high) == pytest.approx((0.7, 0.7, 0.7))


def test_interval_matches_the_normal_approximation_for_many_objects():
    rng = np.random.default_rng(0)
    objects = np.repeat(np.arange(400), 3)  # 400 objects, 3 views each, the views of an object alike
    per_object = rng.random(400)
    values = per_object[objects]
    interval = bootstrap_mean(values, np.zeros_like(objects), objects, resamples=4000, seed=1)
    half_width = 1.96 * per_object.std() / np.sqrt(400)
    assert interval.value == pytest.approx(per_object.mean())
    assert interval.low == pytest.approx(per_object.mean() - half_width, abs=0.2 * half_width)
    assert interval.high == pytest.approx(per_object.mean() + half_width, abs=0.2 * half_width)
    # resampling views instead of objects would understate it: the interval is over objects
    assert interval.high - interval.low > 1.5 * 2 * 1.96 * values.std() / np.sqrt(len(values))


def test_paired_difference_cancels_what_both_share():
    rng = np.random.default_rng(2)
    objects = np.arange(50)
    first = rng.random(50)
    second = first - 0.1
    paired = bootstrap_difference(first, second, np.zeros(50, int), objects, resamples=500)
    assert (paired.value, paired.low, paired.high) == pytest.approx((0.1, 0.1, 0.1))
    assert paired.excludes_zero()
    unrelated = bootstrap_difference(first, rng.random(50), np.zeros(50, int), objects, resamples=500)
    assert unrelated.low < 0 < unrelated.high and not unrelated.excludes_zero()
    with pytest.raises(ValueError, match="differ in shape"):
        bootstrap_difference(first, first[:3], np.zeros(50, int), objects)
