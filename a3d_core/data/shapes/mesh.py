"""Triangle meshes as plain arrays, and the ShapeNet normalisation.

A :class:`TriangleMesh` holds ``vertices (V, 3)`` float32, ``faces (F, 3)`` int64 and
per-vertex ``colors (V, 3)`` float32 in [0, 1]. The built-in shape library builds these with
numpy (no autograd is needed to make data); :func:`to_pytorch3d` turns them into a textured
``pytorch3d.structures.Meshes`` for rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class TriangleMesh:
    """A coloured triangle mesh: ``vertices (V, 3)``, ``faces (F, 3)``, ``colors (V, 3)``."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float32)
        self.faces = np.asarray(self.faces, dtype=np.int64)
        self.colors = np.asarray(self.colors, dtype=np.float32)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {self.vertices.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3), got {self.faces.shape}")
        if self.colors.shape != self.vertices.shape:
            raise ValueError(f"colors must be (V, 3) like the vertices {self.vertices.shape}, got {self.colors.shape}")
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= len(self.vertices)):
            raise ValueError(f"face indices must lie in [0, {len(self.vertices)})")

    def transformed(
        self,
        rotation: np.ndarray | None = None,
        translation: Sequence[float] = (0.0, 0.0, 0.0),
        scale: float | Sequence[float] = 1.0,
    ) -> "TriangleMesh":
        """``x -> R (s * x) + t``; a reflection (negative determinant) keeps faces outward by flipping their order."""
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float32), (3,))
        vertices = self.vertices * scale
        linear = np.diag(scale)
        if rotation is not None:
            rotation = np.asarray(rotation, dtype=np.float32)
            vertices = vertices @ rotation.T
            linear = rotation @ linear
        faces = self.faces[:, ::-1] if np.linalg.det(linear) < 0 else self.faces
        return TriangleMesh(vertices + np.asarray(translation, dtype=np.float32), faces.copy(), self.colors)


def merge_meshes(parts: Sequence[TriangleMesh]) -> TriangleMesh:
    """One mesh from several parts (faces re-indexed; parts may intersect, as in ShapeNet)."""
    if not parts:
        raise ValueError("merge_meshes needs at least one part")
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    return TriangleMesh(
        np.concatenate([p.vertices for p in parts]),
        np.concatenate([p.faces + offset for p, offset in zip(parts, offsets)]),
        np.concatenate([p.colors for p in parts]),
    )


def normalization_transform(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """``(centre (3,), scale)`` that move the bounding box's centre to the origin and make its diagonal 1.

    ShapeNetCore's normalisation (and Kato's renders) put objects in this frame.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    diagonal = float(np.linalg.norm(high - low))
    if not np.isfinite(diagonal) or diagonal <= 0:
        raise ValueError("cannot normalise a mesh whose bounding box is empty or not finite")
    return ((low + high) / 2).astype(np.float32), 1.0 / diagonal


def normalize_mesh(mesh: TriangleMesh) -> TriangleMesh:
    """The mesh centred on its bounding box with a unit bounding-box diagonal."""
    centre, scale = normalization_transform(mesh.vertices)
    return TriangleMesh((mesh.vertices - centre) * scale, mesh.faces, mesh.colors)


def to_pytorch3d(mesh: TriangleMesh, device: str = "cpu"):
    """A ``pytorch3d.structures.Meshes`` of one mesh with per-vertex colour textures."""
    import torch
    from pytorch3d.renderer import TexturesVertex
    from pytorch3d.structures import Meshes

    vertices = torch.from_numpy(mesh.vertices).to(device)
    faces = torch.from_numpy(mesh.faces).to(device)
    colors = torch.from_numpy(mesh.colors).to(device)
    return Meshes(verts=[vertices], faces=[faces], textures=TexturesVertex(verts_features=[colors]))
