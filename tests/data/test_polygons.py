"""The polygon guard: bad coordinates refused with their problem, far-out polygons clipped to the
clipping rectangle, every polygon inside it rasterised bit for bit as pycocotools does."""

import math
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from a3d_core.data.canonical import decode_segmentation
from a3d_core.data.formats.base import SourceImage, SourceInstance
from a3d_core.data.polygons import (
    MAX_OUTLINE_LENGTH,
    PolygonError,
    ShortPolygonError,
    clip_polygon,
    clip_rectangle,
    guard_polygons,
    polygon_points,
)
from a3d_core.data.validate import ProblemKind, ValidationSettings, check_instance
from a3d_core.eval.masks import to_rle

H, W = 30, 40


def _unguarded(polygon: list[float]) -> np.ndarray:
    """pycocotools' own mask ``(H, W)`` of one flat polygon."""
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([polygon], H, W)))


def _random_polygon(rng: np.random.Generator, low: float, high: float) -> list[float]:
    """3 to 8 points (self-intersecting as often as not), x in W * [low, high], y in H * [low, high]."""
    count = int(rng.integers(3, 9))
    return np.stack([rng.uniform(low * W, high * W, count), rng.uniform(low * H, high * H, count)], 1).ravel().tolist()


def _even_odd(points: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Whether each sample ``(S, 2)`` lies inside the polygon ``(N, 2)`` by the even-odd rule."""
    start, end = points, np.roll(points, -1, axis=0)
    x, y = samples[:, None, 0], samples[:, None, 1]
    straddles = (start[:, 1] > y) != (end[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing_x = start[:, 0] + (y - start[:, 1]) * (end[:, 0] - start[:, 0]) / (end[:, 1] - start[:, 1])
    return (straddles & (x < crossing_x)).sum(axis=1) % 2 == 1


def test_polygons_inside_the_clipping_rectangle_are_rasterised_bit_for_bit_as_pycocotools_does():
    rng = np.random.default_rng(0)
    # inside the image, then reaching up to one image size beyond every border (2x the image)
    for low, high in ((0.0, 1.0), (-1.0, 2.0)):
        for _ in range(50):
            polygon = _random_polygon(rng, low, high)
            assert guard_polygons([polygon], H, W) == [polygon]
            expected = mask_utils.merge(mask_utils.frPyObjects([polygon], H, W))
            assert to_rle([polygon], H, W) == expected
            np.testing.assert_array_equal(decode_segmentation(polygon, H, W), mask_utils.decode(expected))


def test_clipping_keeps_exactly_the_part_inside_the_rectangle():
    rng = np.random.default_rng(1)
    rectangle = clip_rectangle(H, W)
    x0, y0, x1, y1 = rectangle
    samples = np.stack([rng.uniform(x0, x1, 4000), rng.uniform(y0, y1, 4000)], 1)
    for _ in range(50):
        points = np.asarray(_random_polygon(rng, -6.0, 7.0)).reshape(-1, 2)
        clipped = clip_polygon(points, rectangle)
        assert ((clipped >= [x0, y0]) & (clipped <= [x1, y1])).all()
        inside = _even_odd(clipped, samples) if len(clipped) >= 3 else np.zeros(len(samples), bool)
        np.testing.assert_array_equal(inside, _even_odd(points, samples))


def test_far_out_polygons_keep_their_mask_up_to_pixels_along_the_clipped_edges():
    """pycocotools rounds vertices to a fifth of a pixel, so a vertex added on the rectangle can
    move a clipped edge's rasterisation by a pixel: only pixels next to the edge may change."""
    rng = np.random.default_rng(2)
    changed = 0
    for _ in range(50):
        polygon = _random_polygon(rng, -5.0, 6.0)
        unguarded = _unguarded(polygon)
        guarded = decode_segmentation(polygon, H, W)
        differ = np.argwhere(guarded != unguarded)
        changed += len(differ)
        padded = np.pad(unguarded, 1, mode="edge")
        for y, x in differ:  # a changed pixel lies on the unguarded mask's edge
            assert padded[y : y + 3, x : x + 3].min() != padded[y : y + 3, x : x + 3].max()
        assert len(differ) <= 0.02 * H * W
    assert changed < 0.002 * 50 * H * W


def test_huge_coordinates_are_clipped_and_a_polygon_wholly_outside_gives_an_empty_mask():
    strip = [2, 3, 1e9, 3, 1e9, 7, 2, 7]
    np.testing.assert_array_equal(decode_segmentation(strip, H, W), _unguarded([2, 3, 2 * W, 3, 2 * W, 7, 2, 7]))
    assert guard_polygons([strip], H, W) == [[2.0, 3.0, 2.0 * W, 3.0, 2.0 * W, 7.0, 2.0, 7.0]]
    huge = [-1e300, -1e300, 1e300, -1e300, 0, 1e300]
    assert max(abs(v) for v in guard_polygons([huge], H, W)[0]) <= 2 * max(H, W)
    far = [1e9, 1e9, 2e9, 1e9, 2e9, 2e9]
    just_outside = [W + 1, 0, W + 5, 0, W + 5, 4]
    assert guard_polygons([far], H, W) == []
    assert not decode_segmentation(far, H, W).any() and not decode_segmentation([far, just_outside], H, W).any()
    assert mask_utils.area(to_rle([far], H, W)) == 0


@pytest.mark.parametrize(
    ("polygon", "error", "message"),
    [
        ([1, 2, math.nan, 4, 5, 6], PolygonError, "polygon coordinate 2 is nan, not a finite number"),
        ([1, 2, 3, 4, 5, -math.inf], PolygonError, "polygon coordinate 5 is -inf, not a finite number"),
        ([1, 2, 3, "4", 5, 6], PolygonError, "polygon coordinates must be numbers"),
        ([1, 2, 3, None, 5, 6], PolygonError, "polygon coordinates must be numbers"),
        ([1, 2, 3, 10**400, 5, 6], PolygonError, "polygon coordinates must be numbers"),
        ([[1, 2], [3, 4], [5, 6]], PolygonError, "polygon coordinates must be numbers"),
        ({"x": 1}, PolygonError, "a polygon must be a list of coordinates, got dict"),
        ([1, 2, 3, 4, 5, 6, 7], PolygonError, "polygon with an odd number of coordinates (7)"),
        ([1, 2, 3, 4], ShortPolygonError, "polygon with 2 point(s) (at least 3 needed)"),
        ([], ShortPolygonError, "polygon with 0 point(s) (at least 3 needed)"),
    ],
)
def test_bad_coordinates_are_refused_with_their_problem(polygon, error, message):
    with pytest.raises(error) as raised:
        polygon_points(polygon)
    assert str(raised.value) == message
    with pytest.raises(ValueError, match=f"^polygon 1: {raised.value}$".replace("(", r"\(").replace(")", r"\)")):
        guard_polygons([[0, 0, 4, 0, 4, 4], polygon], H, W)


def test_both_rasterising_readers_refuse_a_non_finite_polygon():
    for read in (decode_segmentation, to_rle):
        with pytest.raises(PolygonError, match="coordinate 1 is inf"):
            read([[0, math.inf, 4, 0, 4, 4]], H, W)


def _zigzag(left: float, right: float) -> list[float]:
    """A polygon whose edges, from x = ``left`` to ``right`` and back, outline more than the limit."""
    rows = np.linspace(0, H, int(MAX_OUTLINE_LENGTH // (right - left)) + 2)
    return np.stack([np.resize([left, right], len(rows)), rows], 1).ravel().tolist()


def test_an_outline_too_long_to_rasterise_is_refused_and_a_long_plausible_one_is_not():
    zigzag = _zigzag(-W, 2 * W)  # across the clipping rectangle
    with pytest.raises(PolygonError, match=r"^polygon outline \d+ pixels long, more than a3d rasterises"):
        guard_polygons([zigzag], H, W)
    angles = np.linspace(0, 2 * np.pi, 100_000, endpoint=False)
    circle = np.stack([W / 2 + 10 * np.cos(angles), H / 2 + 10 * np.sin(angles)], 1).ravel().tolist()
    assert decode_segmentation(circle, H, W).sum() == pytest.approx(np.pi * 100, rel=0.1)


def test_prepare_reports_what_the_guard_refuses_as_a_skipped_annotation():
    image = SourceImage(1, "a.png", W, H)
    square = [[5, 5, 15, 5, 15, 15, 5, 15]]
    cases = [
        ([[5, 5, math.nan, 5, 15, 15]], ProblemKind.MALFORMED, "polygon coordinate 2 is nan"),
        ([[5, 5, 15, 5]], ProblemKind.SHORT_POLYGON, "polygon with 2 point(s)"),
        ([square[0], [5, 5, 15, 5, 15]], ProblemKind.MALFORMED, "polygon with an odd number of coordinates (5)"),
        ([[0, 0, W, 0, W, H, 0, H], _zigzag(0, W)], ProblemKind.MALFORMED, "polygon 1: polygon outline"),
    ]
    for amodal, kind, detail in cases:
        checked = check_instance(SourceInstance(7, 1, 1, amodal, square), image, Path("a.json"), ValidationSettings())
        assert [(p.kind, p.annotation_id) for p in checked.problems] == [(kind, 7)]
        assert detail in checked.problems[0].detail and checked.amodal is None
