"""The built-in shape library: 13 procedural ShapeNet-like categories, deterministic per seed.

``generate_shape(category, seed)`` -> a :class:`TriangleMesh` centred on its bounding box with a
unit bounding-box diagonal (ShapeNetCore's normalisation). ``seed`` is an int or a sequence of
ints (e.g. ``(dataset_seed, category_index, object_index)``); the same seed gives the same mesh.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from a3d_core.data.shapes.categories import GENERATORS
from a3d_core.data.shapes.mesh import TriangleMesh, merge_meshes, normalize_mesh, to_pytorch3d

CATEGORIES: tuple[str, ...] = tuple(GENERATORS)


def generate_shape(category: str, seed: int | Sequence[int]) -> TriangleMesh:
    """One normalised object of ``category`` drawn with ``seed``."""
    if category not in GENERATORS:
        raise ValueError(f"unknown built-in category {category!r} (known: {', '.join(CATEGORIES)})")
    return normalize_mesh(GENERATORS[category](np.random.default_rng(seed)))


__all__ = ["CATEGORIES", "TriangleMesh", "generate_shape", "merge_meshes", "normalize_mesh", "to_pytorch3d"]
