"""Polygons read from other programs' files, made safe to rasterise.

pycocotools' polygon rasteriser (``frPyObjects`` -> ``rleFrPoly``) casts every coordinate to a
C ``int`` and allocates memory per unit of edge length: a NaN, an infinity or a coordinate of
``1e9`` grows the process until the machine runs out of memory. Every reader of COCO polygons
(:func:`a3d_core.data.canonical.decode_segmentation`, :func:`a3d_core.eval.masks.to_rle`, and
through them ``a3d complete --visible``, ``a3d evaluate``, ``a3d prepare``) passes them through
:func:`guard_polygons` first:

- coordinates that are not numbers, non-finite coordinates, an odd number of coordinates and
  fewer than 3 points are a :class:`PolygonError` (the caller names the entry);
- a polygon whose edges, once clipped, are longer than :data:`MAX_OUTLINE_LENGTH` pixels in all
  (thousands of edges zig-zagging across the image) is a :class:`PolygonError` as well;
- a polygon reaching beyond the clipping rectangle (:func:`clip_rectangle`: the image grown by
  its own width and height on every side) is clipped to it (Sutherland-Hodgman, one half-plane
  after the other; the rectangle is convex, so the clipped polygon covers exactly the part of the
  original inside it, parity and all, and every edge it keeps is at most the rectangle's size);
  a polygon wholly outside it is dropped, its mask is empty.

Polygons inside the clipping rectangle come back unchanged, so their masks are bit for bit what
pycocotools makes of them (``COCOeval`` parity). The rectangle is larger than the image because
pycocotools rasterises on a grid of a fifth of a pixel, rounding each vertex: a vertex added where
an edge meets the image border can move the rasterised edge by a pixel, so clipping at the border
itself would change the masks of the many polygons that overshoot it a little. A polygon clipped
at the larger rectangle keeps its part inside the image up to such a pixel along the clipped edges.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from a3d_core.errors import InputError

MAX_OUTLINE_LENGTH = 4_000_000
"""Pixels of outline one polygon may have (each edge counted as pycocotools walks it, by its
longer side): the outline of a thousand 1000 x 1000 images, far beyond any object's."""


class PolygonError(InputError):
    """A polygon that cannot be rasterised; the message says why, the caller names the entry."""


class ShortPolygonError(PolygonError):
    """A polygon with fewer than 3 points."""


def clip_rectangle(height: int, width: int) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` of the clipping rectangle of a ``height`` x ``width`` image:
    ``[-width, 2 width] x [-height, 2 height]``."""
    return -float(width), -float(height), 2.0 * width, 2.0 * height


def polygon_points(polygon: Any) -> np.ndarray:
    """One flat polygon ``[x1, y1, x2, y2, ...]`` -> its points ``(N, 2)`` float64, checked.

    Raises:
        PolygonError: coordinates that are not numbers or not finite, or an odd count.
        ShortPolygonError: fewer than 3 points.
    """
    if not isinstance(polygon, (list, tuple)):
        raise PolygonError(f"a polygon must be a list of coordinates, got {type(polygon).__name__}")
    try:
        coordinates = np.asarray(polygon)
    except (TypeError, ValueError, OverflowError):
        raise PolygonError("polygon coordinates must be numbers") from None
    if coordinates.ndim != 1 or (coordinates.size and coordinates.dtype.kind not in "iuf"):
        raise PolygonError("polygon coordinates must be numbers")
    coordinates = coordinates.astype(np.float64)
    if not np.isfinite(coordinates).all():
        bad = int(np.flatnonzero(~np.isfinite(coordinates))[0])
        raise PolygonError(f"polygon coordinate {bad} is {coordinates[bad]}, not a finite number")
    if len(coordinates) % 2:
        raise PolygonError(f"polygon with an odd number of coordinates ({len(coordinates)})")
    if len(coordinates) < 6:
        raise ShortPolygonError(f"polygon with {len(coordinates) // 2} point(s) (at least 3 needed)")
    return coordinates.reshape(-1, 2)


def clip_polygon(points: np.ndarray, rectangle: tuple[float, float, float, float]) -> np.ndarray:
    """The part of a polygon inside ``rectangle`` ``(x0, y0, x1, y1)``, by Sutherland-Hodgman.

    Args:
        points: ``(N, 2)`` float64 vertices ``(x, y)``, finite.
        rectangle: the clipping rectangle.

    Returns:
        ``(M, 2)`` float64 vertices, ``points`` itself when no vertex lies outside, ``(0, 2)`` when
        the polygon lies wholly outside.
    """
    x0, y0, x1, y1 = rectangle
    for axis, bound, keep_below in ((0, x0, False), (0, x1, True), (1, y0, False), (1, y1, True)):
        points = _clip_half_plane(points, axis, bound, keep_below)
    return points


def _clip_half_plane(points: np.ndarray, axis: int, bound: float, keep_below: bool) -> np.ndarray:
    """Keep ``points[:, axis] <= bound`` (``keep_below``) or ``>= bound``: each vertex ``(N, 2)``
    is preceded by the crossing of the edge that ends at it, where that edge crosses the line."""
    inside = points[:, axis] <= bound if keep_below else points[:, axis] >= bound
    if inside.all():
        return points
    if not inside.any():
        return points[:0]
    previous = np.roll(points, 1, axis=0)
    crosses = inside != np.roll(inside, 1)
    # where an edge crosses the line: the fraction of the edge before the crossing, in [0, 1]
    along = np.divide(
        bound - previous[:, axis], points[:, axis] - previous[:, axis], out=np.zeros(len(points)), where=crosses
    )
    crossing = previous + along[:, None] * (points - previous)
    crossing[:, axis] = bound
    keep = np.stack([crosses, inside], axis=1)
    return np.stack([crossing, points], axis=1)[keep]


def guard_polygons(polygons: Sequence[Any], height: int, width: int) -> list[list[float]]:
    """Checked polygons, clipped to :func:`clip_rectangle`, as flat coordinate lists that
    pycocotools' ``frPyObjects`` takes; polygons wholly outside the rectangle are left out.

    Raises:
        PolygonError: the first bad polygon's problem (naming its position when there are several),
            or an outline longer than :data:`MAX_OUTLINE_LENGTH`.
    """
    rectangle = clip_rectangle(height, width)
    x0, y0, x1, y1 = rectangle
    longest_edge = 3 * max(height, width)  # of a clipped polygon
    guarded = []
    for index, polygon in enumerate(polygons):
        where = f"polygon {index}: " if len(polygons) > 1 else ""
        try:
            points = polygon_points(polygon)
        except PolygonError as error:
            raise type(error)(f"{where}{error}") from None
        xs, ys = polygon[0::2], polygon[1::2]  # builtin min and max: faster than numpy's on short lists
        inside = x0 <= min(xs) and max(xs) <= x1 and y0 <= min(ys) and max(ys) <= y1
        clipped = points if inside else clip_polygon(points, rectangle)
        if len(clipped) < 3:
            continue
        if len(clipped) * longest_edge > MAX_OUTLINE_LENGTH:
            length = float(np.abs(clipped - np.roll(clipped, 1, axis=0)).max(axis=1).sum())
            if length > MAX_OUTLINE_LENGTH:
                raise PolygonError(
                    f"{where}polygon outline {length:.0f} pixels long, more than a3d rasterises ({MAX_OUTLINE_LENGTH})"
                )
        guarded.append(clipped.ravel().tolist())
    return guarded
