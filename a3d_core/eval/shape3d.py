"""Meshes judged in 3D: voxel IoU of a reconstruction against the object's true mesh.

SoftRas (Liu et al., 2019) reports the 3D IoU of voxelised meshes on ShapeNet at 32^3 (about 62
mean with known cameras); the built-in shape library knows every object's true mesh, so a3d can
do the same for its reconstructions, evaluation only. Both meshes are brought into one frame:

1. the reconstruction is turned from the network's canonical frame into the data's by the
   per-category azimuth alignment of the viewpoint diagnostics (``a_true = m a_pred + offset``,
   :mod:`a3d_core.eval.viewpoint_diagnostics`): mirrored in x when ``m = -1``, then turned by
   ``offset`` about the up axis, which moves the network's camera onto the data's;
2. both are normalised like ShapeNetCore (bounding box centred, unit diagonal), since the
   reconstruction's scale is tied to the predicted camera distance;
3. both are voxelised at ``resolution^3`` over the unit cube by winding numbers counted along
   rays (inside where ``|w| > 1/2``), which handles the library's unions of overlapping closed
   parts and meshes of either orientation.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from a3d_core.data.shapes.mesh import normalization_transform
from a3d_core.eval.viewpoint_diagnostics import AzimuthAlignment

DEFAULT_RESOLUTION = 32


def winding_grid(vertices: torch.Tensor, faces: torch.Tensor, resolution: int = DEFAULT_RESOLUTION) -> torch.Tensor:
    """Winding numbers ``(R, R, R)`` (indexed x, y, z) of a triangle mesh at the voxel centres of a
    grid over ``[-0.5, 0.5]^3``, counted along rays in +z: each face a ray crosses before a voxel
    adds +1 or -1 by its facing. For closed meshes that is the winding number: +-1 inside a part,
    +-2 where two overlap, 0 outside, whatever the mesh's orientation."""
    centres = (torch.arange(resolution, dtype=torch.float64) + 0.5) / resolution - 0.5
    px, py = torch.meshgrid(centres + 1e-7 * math.pi, centres + 1e-7 * math.e, indexing="ij")  # off the grid's edges
    px, py = px.reshape(-1, 1), py.reshape(-1, 1)
    triangle = vertices.double()[faces.long()]  # (F, 3 corners, xyz)
    (x0, x1, x2), (y0, y1, y2), (z0, z1, z2) = (triangle[:, :, k].unbind(1) for k in range(3))
    area = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)  # twice the signed area in xy: its sign is the facing
    flat = area.abs() < 1e-15
    area = torch.where(flat, torch.ones_like(area), area)
    first = ((y1 - y2) * (px - x2) + (x2 - x1) * (py - y2)) / area
    second = ((y2 - y0) * (px - x2) + (x0 - x2) * (py - y2)) / area
    third = 1 - first - second
    hit = (first >= 0) & (second >= 0) & (third >= 0) & ~flat  # (R^2, F)
    depth = first * z0 + second * z1 + third * z2
    crossings = torch.where(hit, torch.sign(area).expand_as(hit), torch.zeros_like(depth))  # (R^2, F)
    before = depth[:, :, None] < centres[None, None, :]  # (R^2, F, R): the face lies before the voxel
    return (crossings[:, :, None] * before).sum(1).reshape(resolution, resolution, resolution)


def normalized(vertices: np.ndarray) -> np.ndarray:
    """Vertices ``(V, 3)`` with their bounding box centred and a unit diagonal."""
    centre, scale = normalization_transform(vertices)
    return (np.asarray(vertices, dtype=np.float64) - centre) * scale


def voxelize(vertices: np.ndarray, faces: np.ndarray, resolution: int = DEFAULT_RESOLUTION) -> torch.Tensor:
    """Occupancy ``(resolution, resolution, resolution)`` bool of the normalised mesh."""
    return winding_grid(torch.as_tensor(normalized(vertices)), torch.as_tensor(faces), resolution).abs() > 0.5


def to_data_frame(vertices: np.ndarray, alignment: AzimuthAlignment) -> np.ndarray:
    """Vertices ``(V, 3)`` of the network's frame in the data's: mirror x when ``m = -1``, then turn
    by ``offset`` about +Y in the sense that takes the camera at azimuth ``a`` to ``a + offset``."""
    turned = np.asarray(vertices, dtype=np.float64).copy()
    if alignment.mirror < 0:
        turned[:, 0] = -turned[:, 0]
    angle = math.radians(alignment.offset)
    x, z = turned[:, 0].copy(), turned[:, 2].copy()
    turned[:, 0] = x * math.cos(angle) - z * math.sin(angle)
    turned[:, 2] = x * math.sin(angle) + z * math.cos(angle)
    return turned


def voxel_iou(first: torch.Tensor, second: torch.Tensor) -> float:
    """IoU of two occupancy grids (1 when both are empty)."""
    union = int((first | second).sum())
    return float((first & second).sum()) / union if union else 1.0
