"""Cutting a shuffled list of objects or images into train, val and test by fractions.

``a3d prepare shapenet`` splits objects, ``a3d prepare modal`` images; both check their fractions
with :func:`check_split_fractions` and cut with :func:`split_counts`, so the two agree on how a
small set is shared out.
"""

from __future__ import annotations

import math
from typing import Sequence


def check_split_fractions(fractions: Sequence[float]) -> None:
    """Raise ValueError unless ``fractions`` are three non-negative (train, val, test) numbers
    summing to 1 with a positive train fraction."""
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"split_fractions must be three non-negative numbers summing to 1, got {fractions}")
    if fractions[0] <= 0:
        raise ValueError("the train fraction must be positive")


def split_counts(total: int, fractions: Sequence[float]) -> list[int]:
    """``[train, val, test]`` counts of ``total`` items cut by ``fractions``: each the floor of its
    share, raised to one for every split with a positive fraction when there are at least as many
    items as such splits; train takes the rest."""
    counts = [int(math.floor(f * total)) for f in fractions]
    if total >= sum(1 for f in fractions if f > 0):
        counts = [max(c, 1) if f > 0 else c for c, f in zip(counts, fractions)]
    counts[0] = total - counts[1] - counts[2]
    return counts
