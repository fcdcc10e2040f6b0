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


def reference_two_level(values, categories, objects, resamples, seed, level=0.95):
    """The two-level bootstrap by plain loops, drawing in the same order (each category's objects,
    then the seeds): a replicate is the mean over its drawn seeds of the category means over its
    drawn objects (all their views)."""
    rng = np.random.default_rng(seed)
    seeds = values.shape[0]
    order = np.unique(categories)
    object_ids = [np.unique(objects[categories == c]) for c in order]
    object_draws = [rng.integers(len(ids), size=(resamples, len(ids))) for ids in object_ids]
    seed_draws = rng.integers(seeds, size=(resamples, seeds)) if seeds > 1 else np.zeros((resamples, 1), int)
    statistics = []
    for r in range(resamples):
        per_seed = []
        for s in seed_draws[r]:
            means = []
            for ids, draws in zip(object_ids, object_draws):
                rows = np.concatenate([np.flatnonzero(objects == ids[k]) for k in draws[r]])
                means.append(values[s, rows].mean())
            per_seed.append(np.mean(means))
        statistics.append(np.mean(per_seed))
    tail = 100 * (1 - level) / 2
    return np.percentile(statistics, [tail, 100 - tail])


def seeded_values(seeds=3, spread=0.05):
    """``(seeds, N)`` values of 2 categories x 5 objects x 3 views, each seed offset by its own amount."""
    rng = np.random.default_rng(4)
    objects = np.repeat(np.arange(10), 3)
    categories = objects // 5
    per_object = 0.5 + 0.1 * rng.random(10)[objects]
    values = per_object[None] + spread * rng.standard_normal((seeds, 1)) + 0.01 * rng.standard_normal((seeds, 30))
    return values, categories, objects


def test_two_level_bootstrap_matches_a_reference_by_loops():
    values, categories, objects = seeded_values()
    interval = bootstrap_mean(values, categories, objects, resamples=300, seed=7)
    low, high = reference_two_level(values, categories, objects, 300, seed=7)
    assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-12)
    assert interval.value == pytest.approx(np.mean([category_mean(row, categories) for row in values]))


def test_one_seed_is_the_one_level_bootstrap_and_seed_variance_widens_the_interval():
    values, categories, objects = seeded_values()
    one = bootstrap_mean(values[0], categories, objects, resamples=300, seed=7)
    assert one == bootstrap_mean(values[:1], categories, objects, resamples=300, seed=7)
    assert (one.low, one.high) == pytest.approx(tuple(reference_two_level(values[:1], categories, objects, 300, 7)))
    calm, _, _ = seeded_values(spread=0.0)
    noisy, _, _ = seeded_values(spread=0.2)
    calm_interval, noisy_interval = (
        bootstrap_mean(v, categories, objects, resamples=500, seed=3) for v in (calm, noisy)
    )
    assert noisy_interval.high - noisy_interval.low > 1.5 * (calm_interval.high - calm_interval.low)


def test_differences_pair_seeds_by_index():
    values, categories, objects = seeded_values(spread=0.3)
    shifted = values - 0.1  # each seed of the second model shares its seed's offset with the first
    paired = bootstrap_difference(values, shifted, categories, objects, resamples=300)
    assert (paired.value, paired.low, paired.high) == pytest.approx((0.1, 0.1, 0.1))
    crossed = bootstrap_difference(values, shifted[::-1], categories, objects, resamples=300)
    assert crossed.high - crossed.low > 0.02  # seeds not paired: their offsets no longer cancel
    with pytest.raises(ValueError, match="differ in shape"):
        bootstrap_difference(values, values[:2], categories, objects)
