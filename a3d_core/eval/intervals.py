"""Means over categories with 95% bootstrap intervals over test OBJECTS and training SEEDS, and
paired differences.

The paper's Table 1 reports mIoU as the mean of the per-category IoUs. The views of one object
are not independent samples (a hard object is hard from every side), so intervals resample
objects, not instances: each bootstrap replicate draws, within every category, as many objects
as it has, with replacement, and recomputes the category means from all the views of the drawn
objects (a stratified cluster bootstrap). A model trained with several seeds gives one value per
seed and instance, ``(seeds, N)``: its statistic is the mean over seeds, and each replicate also
draws as many seeds as there are, with replacement (a two-level bootstrap: seeds, then objects
within category; the objects drawn are the same for every seed, as every seed sees the same test
objects), so that seed variance widens the interval. With one seed it is the one-level bootstrap.
A difference between two models is bootstrapped on the same draws (paired: same objects, same
seed index), so what the two share cancels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A statistic and its ``level`` percentile bootstrap interval."""

    value: float
    low: float
    high: float
    level: float = 0.95

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high, "level": self.level}

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def category_mean(values: np.ndarray, categories: np.ndarray) -> float:
    """The mean over categories of the per-category mean of ``values`` (NaNs ignored)."""
    keep = ~np.isnan(values)
    means = [values[keep & (categories == c)].mean() for c in np.unique(categories[keep])]
    return float(np.mean(means)) if means else float("nan")


def _replicates(
    values: np.ndarray, categories: np.ndarray, objects: np.ndarray, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """``(resamples, M)``: bootstrap statistics of each column of ``values`` ``(S, N, M)`` (seeds,
    instances, columns): per replicate, the objects of every category drawn (in category order),
    then the seeds; the mean over the drawn seeds of the category means over the drawn objects.
    Instances with a NaN in any seed or column are left out."""
    keep = ~np.isnan(values).any(axis=(0, 2))
    values, categories, objects = values[:, keep], categories[keep], objects[keep]
    seeds = values.shape[0]
    per_category = []
    for category in np.unique(categories):
        mine = categories == category
        ids, inverse = np.unique(objects[mine], return_inverse=True)
        sums = np.zeros((seeds, len(ids), values.shape[2]))
        for seed in range(seeds):
            np.add.at(sums[seed], inverse, values[seed, mine])
        counts = np.bincount(inverse, minlength=len(ids)).astype(np.float64)
        draws = rng.integers(len(ids), size=(resamples, len(ids)))
        per_category.append(sums[:, draws].sum(axis=2) / counts[draws].sum(axis=1)[None, :, None])
    means = np.mean(per_category, axis=0)  # (S, resamples, M)
    if seeds == 1:
        return means[0]
    seed_draws = rng.integers(seeds, size=(resamples, seeds))
    return means[seed_draws, np.arange(resamples)[:, None]].mean(axis=1)


def _by_seed(values: np.ndarray) -> np.ndarray:
    """``values`` ``(N,)`` or ``(S, N)`` as ``(S, N)`` float64."""
    values = np.asarray(values, dtype=np.float64)
    return values[None] if values.ndim == 1 else values


def seed_mean(values: np.ndarray, categories: np.ndarray) -> float:
    """The mean over seeds of :func:`category_mean` of each seed's values ``(S, N)``, over the
    instances that no seed has NaN for."""
    keep = ~np.isnan(values).any(axis=0)
    return float(np.mean([category_mean(row[keep], categories[keep]) for row in values]))


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_mean(
    values: np.ndarray,
    categories: np.ndarray,
    objects: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """:func:`category_mean` of ``values`` ``(N,)``, or its mean over seeds for ``values``
    ``(S, N)`` (S training seeds, the same instances), with its interval over ``objects`` ``(N,)``
    and seeds; ``categories`` ``(N,)``."""
    values, categories = _by_seed(values), np.asarray(categories)
    samples = _replicates(values[..., None], categories, np.asarray(objects), resamples, np.random.default_rng(seed))
    return Interval(seed_mean(values, categories), *_percentiles(samples[:, 0], level), level)


def bootstrap_difference(
    first: np.ndarray,
    second: np.ndarray,
    categories: np.ndarray,
    objects: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``first`` minus ``second`` (``(N,)`` or ``(S, N)``: seeds paired by index, instances by
    position), as :func:`bootstrap_mean` of each, with the paired bootstrap interval.

    Instances where either value is NaN (in any seed) are left out of both.
    """
    first, second = _by_seed(first), _by_seed(second)
    if first.shape != second.shape:
        raise ValueError(f"paired values differ in shape: {first.shape} and {second.shape}")
    categories, objects = np.asarray(categories), np.asarray(objects)
    both = np.stack([first, second], axis=2)
    samples = _replicates(both, categories, objects, resamples, np.random.default_rng(seed))
    keep = ~np.isnan(both).any(axis=(0, 2))
    value = seed_mean(first[:, keep], categories[keep]) - seed_mean(second[:, keep], categories[keep])
    return Interval(value, *_percentiles(samples[:, 0] - samples[:, 1], level), level)
