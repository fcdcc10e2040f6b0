"""Procedural textured backgrounds for the built-in scenes, in numpy.

A background is one of

* ``gradient``: a linear ramp between two colours at a random angle,
* ``noise``: smooth multi-octave value noise between two colours (stone, carpet, clouds),
* ``stripes``: soft bands of two colours at a random angle and period (fabric, planks),
* ``checkers``: a rotated checkerboard of two colours (tiles, table cloth),

with a little fine-grained value noise on top so that no background is perfectly flat. Every
draw comes from the ``numpy`` Generator passed in: the same generator state gives the same image.
"""

from __future__ import annotations

import math

import numpy as np

BACKGROUND_KINDS = ("gradient", "noise", "stripes", "checkers")


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Value noise ``(H, W)`` in [0, 1]: a ``cells``-wide random lattice, bilinearly interpolated."""
    rows = max(2, round(cells * height / max(width, 1)) + 1)
    cols = cells + 1
    lattice = rng.uniform(0.0, 1.0, (rows, cols))
    ys = np.linspace(0.0, rows - 1.0, height)
    xs = np.linspace(0.0, cols - 1.0, width)
    y0 = np.minimum(ys.astype(int), rows - 2)
    x0 = np.minimum(xs.astype(int), cols - 2)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    top = lattice[y0][:, x0] * (1 - fx) + lattice[y0][:, x0 + 1] * fx
    bottom = lattice[y0 + 1][:, x0] * (1 - fx) + lattice[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def fractal_noise(
    rng: np.random.Generator, height: int, width: int, octaves: int = 4, base_cells: int = 3
) -> np.ndarray:
    """Sum of ``octaves`` value-noise layers, each twice as fine and half as strong; ``(H, W)`` in [0, 1]."""
    total = np.zeros((height, width))
    weight_sum = 0.0
    for octave in range(octaves):
        weight = 0.5**octave
        total += weight * smooth_noise(rng, height, width, base_cells * 2**octave)
        weight_sum += weight
    return total / weight_sum


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A base colour and a second one of clearly different brightness."""
    first = rng.uniform(0.1, 0.9, 3)
    shift = rng.uniform(0.2, 0.45) * rng.choice([-1.0, 1.0])
    second = np.clip(first + shift + rng.uniform(-0.15, 0.15, 3), 0.0, 1.0)
    return first, second


def _rotated_coordinates(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(H, W)`` along and across a random direction."""
    angle = rng.uniform(0.0, math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    along = xs * math.cos(angle) + ys * math.sin(angle)
    across = -xs * math.sin(angle) + ys * math.cos(angle)
    return along, across


def random_background(
    rng: np.random.Generator, height: int, width: int, kind: str | None = None
) -> tuple[np.ndarray, str]:
    """A textured background ``(H, W, 3)`` float32 in [0, 1] and the kind drawn (or ``kind`` if given)."""
    if kind is None:
        kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    first, second = _two_colours(rng)
    if kind == "gradient":
        along, _ = _rotated_coordinates(rng, height, width)
        mix = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    elif kind == "noise":
        mix = fractal_noise(rng, height, width, octaves=4, base_cells=int(rng.integers(2, 6)))
        mix = (mix - mix.min()) / max(float(np.ptp(mix)), 1e-6)
    elif kind == "stripes":
        along, _ = _rotated_coordinates(rng, height, width)
        period = rng.uniform(0.04, 0.2) * max(height, width)
        sharpness = rng.uniform(1.0, 6.0)
        mix = 0.5 + 0.5 * np.tanh(sharpness * np.sin(2 * math.pi * along / period))
    elif kind == "checkers":
        along, across = _rotated_coordinates(rng, height, width)
        cell = rng.uniform(0.05, 0.2) * max(height, width)
        mix = ((np.floor(along / cell) + np.floor(across / cell)) % 2).astype(np.float64)
    else:
        raise ValueError(f"unknown background kind {kind!r} (known: {', '.join(BACKGROUND_KINDS)})")
    image = first * (1 - mix[..., None]) + second * mix[..., None]
    grain = rng.uniform(0.02, 0.08) * (
        fractal_noise(rng, height, width, octaves=2, base_cells=max(width // 8, 2)) - 0.5
    )
    return np.clip(image + grain[..., None], 0.0, 1.0).astype(np.float32), kind
