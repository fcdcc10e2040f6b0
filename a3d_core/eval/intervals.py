"""Means over categories with 95% bootstrap intervals over test OBJECTS, and paired differences.

The paper's Table 1 reports mIoU as the mean of the per-category IoUs. The views of one object
are not independent samples (a hard object is hard from every side), so intervals resample
objects, not instances: each bootstrap replicate draws, within every category, as many objects
as it has, with replacement, and recomputes the category means from all the views of the drawn
objects (a stratified cluster bootstrap). A difference between two models is bootstrapped on
the same draws (paired), so what the two share cancels.
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
    """``(resamples, len(values) columns summed)``: bootstrap category means of each column of ``values`` ``(N, M)``."""
    keep = ~np.isnan(values).any(axis=1)
    values, categories, objects = values[keep], categories[keep], objects[keep]
    per_category = []
    for category in np.unique(categories):
        mine = categories == category
        ids, inverse = np.unique(objects[mine], return_inverse=True)
        sums = np.zeros((len(ids), values.shape[1]))
        np.add.at(sums, inverse, values[mine])
        counts = np.bincount(inverse, minlength=len(ids)).astype(np.float64)
        draws = rng.integers(len(ids), size=(resamples, len(ids)))
        per_category.append(sums[draws].sum(axis=1) / counts[draws].sum(axis=1)[:, None])
    return np.mean(per_category, axis=0)


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
    """:func:`category_mean` of ``values`` ``(N,)`` with its interval over ``objects`` ``(N,)``."""
    values = np.asarray(values, dtype=np.float64)
    samples = _replicates(
        values[:, None], np.asarray(categories), np.asarray(objects), resamples, np.random.default_rng(seed)
    )
    return Interval(category_mean(values, np.asarray(categories)), *_percentiles(samples[:, 0], level), level)


def bootstrap_difference(
    first: np.ndarray,
    second: np.ndarray,
    categories: np.ndarray,
    objects: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``category_mean(first) - category_mean(second)`` over the same instances, paired bootstrap.

    Instances where either value is NaN are left out of both.
    """
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.shape != second.shape:
        raise ValueError(f"paired values differ in shape: {first.shape} and {second.shape}")
    categories, objects = np.asarray(categories), np.asarray(objects)
    both = np.stack([first, second], axis=1)
    samples = _replicates(both, categories, objects, resamples, np.random.default_rng(seed))
    keep = ~np.isnan(both).any(axis=1)
    value = category_mean(first[keep], categories[keep]) - category_mean(second[keep], categories[keep])
    return Interval(value, *_percentiles(samples[:, 0] - samples[:, 1], level), level)
