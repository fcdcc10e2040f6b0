"""Convex parts as triangle meshes: boxes, lofts, frusta between two points, ellipsoids.

Every builder returns a :class:`TriangleMesh` with one flat colour and outward faces. Parts
are built in a local frame (extrusion axis +Y) and placed with a rotation and a translation;
categories (``shapes.categories``) assemble them. Units are arbitrary: assembled objects are
normalised to a unit bounding-box diagonal afterwards, as ShapeNet's are.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from a3d_core.data.shapes.mesh import TriangleMesh

Color = Sequence[float]


def rotation_matrix(axis: str, degrees: float) -> np.ndarray:
    """``(3, 3)`` right-handed rotation by ``degrees`` about the world ``axis`` ('x', 'y' or 'z')."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    matrices = {
        "x": [[1, 0, 0], [0, c, -s], [0, s, c]],
        "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
        "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]],
    }
    if axis not in matrices:
        raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
    return np.asarray(matrices[axis], dtype=np.float32)


def rotation_from_y(direction: Sequence[float]) -> np.ndarray:
    """``(3, 3)`` rotation taking +Y onto the unit vector along ``direction`` (Rodrigues)."""
    target = np.asarray(direction, dtype=np.float64)
    target = target / np.linalg.norm(target)
    source = np.array([0.0, 1.0, 0.0])
    cross, cosine = np.cross(source, target), float(source @ target)
    if np.linalg.norm(cross) < 1e-9:
        return np.eye(3, dtype=np.float32) if cosine > 0 else np.diag([1.0, -1.0, -1.0]).astype(np.float32)
    skew = np.array([[0, -cross[2], cross[1]], [cross[2], 0, -cross[0]], [-cross[1], cross[0], 0]])
    return (np.eye(3) + skew + skew @ skew / (1.0 + cosine)).astype(np.float32)


def _orient_outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip faces whose normal points towards the part's centroid (valid for convex parts)."""
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    inward = np.einsum("fi,fi->f", normals, corners.mean(axis=1) - vertices.mean(axis=0)) < 0
    faces = faces.copy()
    faces[inward] = faces[inward][:, ::-1]
    return faces


def _part(
    vertices: np.ndarray, faces: np.ndarray, color: Color, rotation: np.ndarray | None, translation: Sequence[float]
) -> TriangleMesh:
    faces = _orient_outward(vertices, np.asarray(faces, dtype=np.int64))
    colors = np.broadcast_to(np.asarray(color, dtype=np.float32), vertices.shape)
    return TriangleMesh(vertices, faces, colors).transformed(rotation, translation)


def loft(
    bottom: np.ndarray,
    top: np.ndarray,
    height: float,
    color: Color,
    rotation: np.ndarray | None = None,
    translation: Sequence[float] = (0.0, 0.0, 0.0),
    top_offset: Sequence[float] = (0.0, 0.0),
) -> TriangleMesh:
    """A closed solid between two convex rings of the same length ``(N, 2)`` in the XZ plane.

    ``bottom`` sits at ``y = -height / 2`` and ``top`` at ``y = +height / 2``, shifted by
    ``top_offset`` (dx, dz); both are capped. Boxes, tapered boxes, wings and hulls are lofts.
    """
    bottom, top = (
        np.asarray(bottom, dtype=np.float32),
        np.asarray(top, dtype=np.float32) + np.asarray(top_offset, np.float32),
    )
    if bottom.shape != top.shape or bottom.ndim != 2 or bottom.shape[1] != 2 or len(bottom) < 3:
        raise ValueError(f"loft rings must both be (N >= 3, 2), got {bottom.shape} and {top.shape}")
    n = len(bottom)

    def ring(xz, y):
        return np.column_stack([xz[:, 0], np.full(n, y, np.float32), xz[:, 1]])

    centres = np.array(
        [[bottom[:, 0].mean(), -height / 2, bottom[:, 1].mean()], [top[:, 0].mean(), height / 2, top[:, 1].mean()]],
        dtype=np.float32,
    )
    vertices = np.concatenate([ring(bottom, -height / 2), ring(top, height / 2), centres])
    i = np.arange(n)
    j = (i + 1) % n
    sides = np.concatenate([np.column_stack([i, j, n + j]), np.column_stack([i, n + j, n + i])])
    caps = np.concatenate(
        [np.column_stack([np.full(n, 2 * n), j, i]), np.column_stack([np.full(n, 2 * n + 1), n + i, n + j])]
    )
    return _part(vertices, np.concatenate([sides, caps]), color, rotation, translation)


def rectangle(width: float, depth: float) -> np.ndarray:
    """The ring ``(4, 2)`` of an axis-aligned ``width x depth`` rectangle centred at the origin."""
    w, d = width / 2, depth / 2
    return np.array([[-w, -d], [w, -d], [w, d], [-w, d]], dtype=np.float32)


def box(
    center: Sequence[float], size: Sequence[float], color: Color, rotation: np.ndarray | None = None
) -> TriangleMesh:
    """An axis-aligned (before ``rotation``) box of ``size = (sx, sy, sz)`` centred at ``center``."""
    sx, sy, sz = size
    ring = rectangle(sx, sz)
    return loft(ring, ring, sy, color, rotation, center)


def tapered_box(
    center: Sequence[float],
    size: Sequence[float],
    top_scale: Sequence[float],
    color: Color,
    rotation: np.ndarray | None = None,
    top_offset: Sequence[float] = (0.0, 0.0),
) -> TriangleMesh:
    """A box whose top face is scaled by ``top_scale = (kx, kz)`` and shifted by ``top_offset``."""
    sx, sy, sz = size
    return loft(
        rectangle(sx, sz), rectangle(sx * top_scale[0], sz * top_scale[1]), sy, color, rotation, center, top_offset
    )


def circle(radius_x: float, radius_z: float, segments: int) -> np.ndarray:
    """The ring ``(segments, 2)`` of an ellipse with the given radii."""
    angles = np.linspace(0.0, 2 * math.pi, segments, endpoint=False)
    return np.column_stack([radius_x * np.cos(angles), radius_z * np.sin(angles)]).astype(np.float32)


def frustum(
    start: Sequence[float],
    end: Sequence[float],
    radius_start: float,
    radius_end: float,
    color: Color,
    segments: int = 16,
) -> TriangleMesh:
    """A capped cylinder, cone frustum or (``radius_end`` near 0) cone from ``start`` to ``end``."""
    start, end = np.asarray(start, np.float32), np.asarray(end, np.float32)
    axis = end - start
    length = float(np.linalg.norm(axis))
    if length <= 0:
        raise ValueError("frustum needs distinct start and end points")
    radius_end = max(radius_end, 1e-4)
    return loft(
        circle(radius_start, radius_start, segments),
        circle(radius_end, radius_end, segments),
        length,
        color,
        rotation_from_y(axis),
        (start + end) / 2,
    )


def ellipsoid(
    center: Sequence[float],
    radii: Sequence[float],
    color: Color,
    rotation: np.ndarray | None = None,
    rings: int = 10,
    segments: int = 16,
) -> TriangleMesh:
    """A UV ellipsoid with semi-axes ``radii = (rx, ry, rz)`` (poles on the local Y axis)."""
    polar = np.linspace(0.0, math.pi, rings + 1)[1:-1]
    azimuth = np.linspace(0.0, 2 * math.pi, segments, endpoint=False)
    p, a = np.meshgrid(polar, azimuth, indexing="ij")
    body = np.column_stack([(np.sin(p) * np.cos(a)).ravel(), np.cos(p).ravel(), (np.sin(p) * np.sin(a)).ravel()])
    vertices = np.concatenate([body, [[0, 1, 0], [0, -1, 0]]]).astype(np.float32) * np.asarray(radii, np.float32)
    top, bottom = len(body), len(body) + 1
    faces = []
    for r in range(rings - 2):
        for s in range(segments):
            a0, a1 = r * segments + s, r * segments + (s + 1) % segments
            b0, b1 = a0 + segments, a1 + segments
            faces += [[a0, a1, b1], [a0, b1, b0]]
    last = (rings - 2) * segments
    for s in range(segments):
        faces.append([top, s, (s + 1) % segments])
        faces.append([bottom, last + (s + 1) % segments, last + s])
    return _part(vertices, np.asarray(faces), color, rotation, center)
