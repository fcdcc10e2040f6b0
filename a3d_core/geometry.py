"""Cameras and the mesh template shared by rendering the data (``data.render``) and the network (``model.render``).

Viewpoints follow Kato et al.'s ShapeNet renders (NMR, SoftRas; ../FORMATS.md): a look-at camera
at elevation ``e``, azimuth ``a`` and distance ``d`` whose eye is
``(d cos e sin a, d sin e, -d cos e cos a)``, looking at the origin with +Y up, and a
perspective lens of viewing half-angle 15 degrees (field of view 30 degrees). View ``v`` of the
24 Kato views has ``e = 30``, ``d = 2.732`` and ``a = -15 v`` degrees. The network's viewpoint
estimator (paper 3.4) predicts the same three parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from pytorch3d.renderer import FoVPerspectiveCameras, look_at_view_transform

KATO_ELEVATION_DEG = 30.0
KATO_DISTANCE = 2.732
KATO_AZIMUTH_STEP_DEG = -15.0
KATO_NUM_VIEWS = 24
KATO_FOV_DEG = 30.0
ELEVATION_RANGE_DEG = (-30.0, 75.0)
"""The elevations (degrees) the viewpoint estimator predicts by default; data rendered for it stays inside."""


@dataclass
class Viewpoint:
    """A batch of look-at viewpoints. All tensors ``(B,)``; angles in radians."""

    elevation: torch.Tensor
    azimuth: torch.Tensor
    distance: torch.Tensor

    def __len__(self) -> int:
        return int(self.elevation.shape[0])

    def to(self, device: torch.device | str) -> "Viewpoint":
        return Viewpoint(self.elevation.to(device), self.azimuth.to(device), self.distance.to(device))

    def index(self, selection: torch.Tensor | slice) -> "Viewpoint":
        return Viewpoint(self.elevation[selection], self.azimuth[selection], self.distance[selection])

    @classmethod
    def from_degrees(cls, elevation, azimuth, distance) -> "Viewpoint":
        def as_tensor(x):
            return torch.as_tensor(x, dtype=torch.float32).reshape(-1)

        elevation, azimuth, distance = torch.broadcast_tensors(
            as_tensor(elevation), as_tensor(azimuth), as_tensor(distance)
        )
        return cls(torch.deg2rad(elevation), torch.deg2rad(azimuth), distance.clone())


def kato_viewpoints(view_ids: torch.Tensor | list[int] | None = None) -> Viewpoint:
    """Kato's 24 ShapeNet views (or the given view ids): elevation 30, distance 2.732, azimuth -15 v."""
    views = torch.arange(KATO_NUM_VIEWS) if view_ids is None else torch.as_tensor(view_ids).reshape(-1)
    return Viewpoint.from_degrees(KATO_ELEVATION_DEG, KATO_AZIMUTH_STEP_DEG * views.float(), KATO_DISTANCE)


def eye_positions(viewpoint: Viewpoint) -> torch.Tensor:
    """Camera centres ``(B, 3)``: ``(d cos e sin a, d sin e, -d cos e cos a)`` (Kato's convention)."""
    e, a, d = viewpoint.elevation, viewpoint.azimuth, viewpoint.distance
    return torch.stack([d * torch.cos(e) * torch.sin(a), d * torch.sin(e), -d * torch.cos(e) * torch.cos(a)], dim=-1)


def look_at_cameras(
    viewpoint: Viewpoint, fov_degrees: float = KATO_FOV_DEG, znear: float = 0.1, zfar: float = 100.0
) -> FoVPerspectiveCameras:
    """pytorch3d perspective cameras at ``viewpoint`` looking at the origin, +Y up.

    Differentiable with respect to the viewpoint tensors (the rotation and translation are built
    from the eye positions with autograd), which the viewpoint estimator needs (paper 3.4).
    The camera frame is mirrored in x relative to pytorch3d's ``look_at_view_transform`` so that
    images are not left-right flipped against Kato's renders (the rotation becomes a reflection;
    pytorch3d's rasterizer does not cull back faces, so the flipped winding is harmless).
    """
    eye = eye_positions(viewpoint)
    rotation, translation = look_at_view_transform(eye=eye, device=eye.device)
    # pytorch3d's screen +X points left; SoftRas/NMR (Kato's renders) put the camera's +X on the
    # right. Negating the camera's x axis makes our images match Kato's instead of their mirror.
    mirror = torch.tensor([-1.0, 1.0, 1.0], device=eye.device)
    rotation, translation = rotation * mirror, translation * mirror
    return FoVPerspectiveCameras(R=rotation, T=translation, fov=fov_degrees, znear=znear, zfar=zfar, device=eye.device)


def ico_sphere_template(level: int = 3, radius: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """The ico-sphere the shape decoder deforms (paper 3.3): vertices ``(V, 3)``, faces ``(F, 3)``.

    Level 3 has 642 vertices and 1280 faces (SoftRas' ``sphere_642``); level 2 has 162, level 4 2562.
    The default radius 0.5 fits the unit-diagonal normalisation of ShapeNet objects.
    """
    from pytorch3d.utils import ico_sphere

    if not 0 <= level <= 6:
        raise ValueError(f"ico-sphere level must be in 0..6, got {level}")
    mesh = ico_sphere(level)
    return mesh.verts_packed() * radius, mesh.faces_packed()


def soft_blur_radius(sigma: float, probability_floor: float = 1e-4) -> float:
    """Blur radius (in squared NDC distance) beyond which a face contributes < ``probability_floor``.

    pytorch3d's SoftSilhouetteShader docs: ``blur_radius = log(1 / 1e-4 - 1) * sigma``.
    """
    return math.log(1.0 / probability_floor - 1.0) * sigma
