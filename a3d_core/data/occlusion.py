"""Synthetic occlusion: paint occluders over a rendered object (paper 3.7 and 4.1).

The paper pretrains and tests on ShapeNet renders "with random synthetic occlusion". An occluder
is one of

* ``object``: another object's rendered silhouette with its rendered appearance (from a bank of
  ``(rgb, mask)`` renders passed in),
* ``polygon``: a random star-shaped polygon, ``ellipse``: a rotated ellipse, ``bar``: a long
  rotated band across the image,

each painted in a random flat colour or a random texture (stripes, checks, smooth noise). The
generator draws a target occlusion rate uniformly in ``[min_rate, max_rate]`` (capped so that at
least ``min_visible_fraction`` of the object stays visible), slides a random occluder in from a
random direction and keeps the placement whose rate is closest to the target. If no occluder
lands in range after ``max_attempts``, a half-plane "wall" is cut at exactly the target rate, so
the returned rate always lies in the range. Everything is drawn from the ``numpy`` Generator
passed in: the same seed gives the same occlusion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

OCCLUDER_KINDS = ("object", "polygon", "ellipse", "bar")


@dataclass
class OcclusionSettings:
    """Target occlusion and occluder mix.

    min_rate, max_rate: the occlusion rate ``1 - |visible| / |amodal|`` is drawn in this range.
    min_visible_fraction: at least this fraction of the amodal mask stays visible.
    kind_weights: relative frequency of ``object``, ``polygon``, ``ellipse``, ``bar`` occluders
        (``object`` needs a bank of renders; without one its weight goes to the others).
    texture_probability: chance that a shape occluder is textured rather than flat.
    max_attempts: occluders tried before the half-plane fallback.
    tolerance: accept a placement whose rate is within this of the target.
    """

    min_rate: float = 0.1
    max_rate: float = 0.7
    min_visible_fraction: float = 0.2
    kind_weights: tuple[float, float, float, float] = (0.4, 0.25, 0.2, 0.15)
    texture_probability: float = 0.5
    max_attempts: int = 12
    tolerance: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_rate <= self.max_rate < 1.0:
            raise ValueError(f"need 0 <= min_rate <= max_rate < 1, got {self.min_rate} and {self.max_rate}")
        if not 0.0 < self.min_visible_fraction <= 1.0:
            raise ValueError(f"min_visible_fraction must be in (0, 1], got {self.min_visible_fraction}")
        if self.min_rate > 1.0 - self.min_visible_fraction:
            raise ValueError(
                f"min_rate {self.min_rate} leaves less than min_visible_fraction {self.min_visible_fraction} visible"
            )
        if len(self.kind_weights) != len(OCCLUDER_KINDS) or min(self.kind_weights) < 0 or sum(self.kind_weights) <= 0:
            raise ValueError(f"kind_weights must be {len(OCCLUDER_KINDS)} non-negative numbers, not all zero")
        if not 0.0 <= self.texture_probability <= 1.0:
            raise ValueError(f"texture_probability must be in [0, 1], got {self.texture_probability}")
        if self.max_attempts < 0 or self.tolerance < 0:
            raise ValueError("max_attempts and tolerance must be non-negative")

    @property
    def highest_rate(self) -> float:
        return min(self.max_rate, 1.0 - self.min_visible_fraction)

    def covered_pixel_range(self, area: int) -> tuple[int, int]:
        """``(low, high)``: the whole numbers of a mask's ``area`` pixels that hide it at a rate in
        ``[min_rate, highest_rate]``; empty (``low > high``) for a mask too small to occlude so."""
        return math.ceil(self.min_rate * area - 1e-9), math.floor(self.highest_rate * area + 1e-9)


@dataclass
class OccludedSample:
    """An occluded view. ``rgb (3, S, S)`` float32 in [0, 1]; masks ``(S, S)`` bool."""

    rgb: np.ndarray
    visible: np.ndarray
    amodal: np.ndarray
    occluder: np.ndarray
    occlusion_rate: float
    kind: str


def _draw_polygon(points: np.ndarray, size: int) -> np.ndarray:
    """Rasterise ``points (N, 2)`` (x, y pixel coordinates) to a bool ``(size, size)`` mask."""
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in points], fill=1)
    return np.asarray(canvas, dtype=bool)


def _shape_points(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Outline ``(N, 2)`` of a polygon, ellipse or bar centred at the origin, in pixels."""
    rotation = rng.uniform(0.0, math.pi)
    if kind == "polygon":
        corners = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0.0, 2 * math.pi, corners))
        radii = size * rng.uniform(0.12, 0.4, corners)
    elif kind == "ellipse":
        angles = np.linspace(0.0, 2 * math.pi, 32, endpoint=False)
        a, b = size * rng.uniform(0.1, 0.4), size * rng.uniform(0.06, 0.3)
        radii = a * b / np.sqrt((b * np.cos(angles)) ** 2 + (a * np.sin(angles)) ** 2)
    elif kind == "bar":
        half_length, half_width = size * 1.5, size * rng.uniform(0.04, 0.18)
        corners = np.array(
            [
                [-half_length, -half_width],
                [half_length, -half_width],
                [half_length, half_width],
                [-half_length, half_width],
            ]
        )
        angles, radii = np.arctan2(corners[:, 1], corners[:, 0]), np.hypot(corners[:, 0], corners[:, 1])
    else:
        raise ValueError(f"unknown shape occluder {kind!r}")
    angles = angles + rotation
    return np.column_stack([radii * np.cos(angles), radii * np.sin(angles)])


def random_appearance(size: int, rng: np.random.Generator, texture_probability: float) -> np.ndarray:
    """An occluder's paint ``(3, S, S)`` float32: a flat colour, stripes, checks or smooth noise."""
    first, second = rng.uniform(0.0, 1.0, 3), rng.uniform(0.0, 1.0, 3)
    if rng.random() >= texture_probability:
        return np.broadcast_to(first[:, None, None], (3, size, size)).astype(np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    pattern = int(rng.integers(3))
    if pattern == 0:
        angle, period = rng.uniform(0, math.pi), rng.uniform(3.0, 12.0)
        weight = (np.sin(2 * math.pi * (xs * math.cos(angle) + ys * math.sin(angle)) / period) > 0).astype(np.float32)
    elif pattern == 1:
        cell = int(rng.integers(3, 10))
        weight = ((xs // cell + ys // cell) % 2).astype(np.float32)
    else:
        coarse = rng.uniform(0.0, 1.0, (5, 5)).astype(np.float32)
        weight = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.BILINEAR), dtype=np.float32)
    return (first[:, None, None] * (1 - weight) + second[:, None, None] * weight).astype(np.float32)


def _paste(mask: np.ndarray, appearance: np.ndarray, centre: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Place a centred ``(M, M)`` occluder so that its middle lands at ``centre`` (y, x) of an S x S image."""
    canvas = np.zeros((size, size), bool)
    paint = np.zeros((3, size, size), np.float32)
    m = mask.shape[0]
    top, left = int(round(centre[0])) - m // 2, int(round(centre[1])) - m // 2
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + m, size), min(left + m, size)
    if y0 < y1 and x0 < x1:
        canvas[y0:y1, x0:x1] = mask[y0 - top : y1 - top, x0 - left : x1 - left]
        paint[:, y0:y1, x0:x1] = appearance[:, y0 - top : y1 - top, x0 - left : x1 - left]
    return canvas, paint


class OcclusionGenerator:
    """Occludes rendered views. ``generator(rgb (3, S, S), amodal (S, S), rng) -> OccludedSample``.

    ``bank`` holds other objects' renders ``(rgb (3, S, S) float in [0, 1], mask (S, S) bool)``
    to use as ``object`` occluders; pass ``exclude`` to skip bank entries of the occluded object.
    """

    def __init__(
        self, settings: OcclusionSettings | None = None, bank: Sequence[tuple[np.ndarray, np.ndarray]] = ()
    ) -> None:
        self.settings = settings or OcclusionSettings()
        self.bank = list(bank)

    def _occluder(
        self, kind: str, size: int, rng: np.random.Generator, exclude: set[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """A centred occluder ``(mask (M, M), appearance (3, M, M))`` with ``M = 2 S``."""
        canvas = 2 * size
        if kind == "object":
            choices = [i for i in range(len(self.bank)) if i not in exclude]
            rgb, mask = self.bank[choices[int(rng.integers(len(choices)))]]
            scale = rng.uniform(0.8, 1.6)
            side = max(4, int(round(size * scale)))
            index = np.clip((np.arange(side) / scale).astype(int), 0, size - 1)
            big_mask = np.zeros((canvas, canvas), bool)
            big_rgb = np.zeros((3, canvas, canvas), np.float32)
            start = (canvas - side) // 2
            big_mask[start : start + side, start : start + side] = np.asarray(mask, bool)[np.ix_(index, index)]
            big_rgb[:, start : start + side, start : start + side] = np.asarray(rgb, np.float32)[:, index][:, :, index]
            if rng.random() < 0.5:
                big_mask, big_rgb = big_mask[:, ::-1], big_rgb[:, :, ::-1]
            return big_mask, big_rgb
        points = _shape_points(kind, size, rng) + canvas / 2
        return _draw_polygon(points, canvas), random_appearance(canvas, rng, self.settings.texture_probability)

    def __call__(
        self, rgb: np.ndarray, amodal: np.ndarray, rng: np.random.Generator, exclude: Sequence[int] = ()
    ) -> OccludedSample:
        rgb = np.asarray(rgb, np.float32)
        amodal = np.asarray(amodal, bool)
        size = amodal.shape[0]
        if rgb.shape != (3, size, size) or amodal.shape != (size, size):
            raise ValueError(f"expected rgb (3, S, S) and amodal (S, S), got {rgb.shape} and {amodal.shape}")
        area = int(amodal.sum())
        if area == 0:
            raise ValueError("cannot occlude an empty amodal mask")
        settings = self.settings
        low, high = settings.min_rate, settings.highest_rate
        target = rng.uniform(low, high)
        exclude_set = set(int(i) for i in exclude)
        weights = np.asarray(settings.kind_weights, dtype=np.float64)
        if len(self.bank) <= len(exclude_set):
            weights[0] = 0.0
        weights = weights / weights.sum()
        ys, xs = np.nonzero(amodal)
        centroid = np.array([ys.mean(), xs.mean()])
        best = None
        for _ in range(settings.max_attempts):
            kind = OCCLUDER_KINDS[int(rng.choice(len(OCCLUDER_KINDS), p=weights))]
            mask, appearance = self._occluder(kind, size, rng, exclude_set)
            angle = rng.uniform(0.0, 2 * math.pi)
            direction = np.array([math.sin(angle), math.cos(angle)])
            for distance in np.linspace(1.1, 0.0, 12) * size:
                occluder, paint = _paste(mask, appearance, centroid + distance * direction, size)
                rate = float((occluder & amodal).sum()) / area
                if low <= rate <= high and (best is None or abs(rate - target) < abs(best[0] - target)):
                    best = (rate, occluder, paint, kind)
            if best is not None and abs(best[0] - target) <= settings.tolerance:
                break
        if best is None:
            best = self._half_plane(amodal, target, rng, size)
        rate, occluder, paint, kind = best
        visible = amodal & ~occluder
        occluded_rgb = np.where(occluder[None], paint, rgb).astype(np.float32)
        return OccludedSample(occluded_rgb, visible, amodal, occluder, 1.0 - visible.sum() / area, kind)

    def _half_plane(self, amodal: np.ndarray, target: float, rng: np.random.Generator, size: int):
        """A wall covering exactly ``round(target * area)`` amodal pixels (clipped to the allowed range)."""
        area = int(amodal.sum())
        low, high = self.settings.covered_pixel_range(area)
        if low > high:
            raise ValueError(
                f"an amodal mask of {area} pixels cannot be occluded at a rate in "
                f"[{self.settings.min_rate}, {self.settings.highest_rate}]"
            )
        covered = int(np.clip(round(target * area), low, high))
        angle = rng.uniform(0.0, 2 * math.pi)
        ys, xs = np.mgrid[0:size, 0:size]
        # a tiny irrational tilt breaks ties between pixels on one line, so exactly `covered` are taken
        projection = xs * math.cos(angle) + ys * math.sin(angle) + (xs * math.sqrt(2) + ys * math.sqrt(3)) * 1e-6
        inside = np.sort(projection[amodal])[::-1]
        occluder = projection >= inside[covered - 1] if covered > 0 else np.zeros_like(amodal)
        paint = random_appearance(size, rng, self.settings.texture_probability)
        return covered / area, occluder, paint, "wall"
