"""Render meshes to shaded RGB images and silhouettes at given viewpoints (data, not the model).

The cameras are :func:`a3d_core.geometry.look_at_cameras`, the same the network's soft
silhouette renderer uses (paper 3.4), so a mesh rendered here at Kato's 24 views
(:func:`a3d_core.geometry.kato_viewpoints`) lines up with what the model renders. Rasterisation
is pytorch3d's hard z-buffer (one face per pixel); shading is flat Blinn-Phong with a key light
tied to the camera, two-sided (each face's normal is turned towards the eye, so meshes with
inconsistent winding, common in ShapeNet, shade correctly). Colour comes from the mesh's own
textures (per-vertex colours or a UV texture image, e.g. the cow's). Rendering at
``supersample`` times the size and averaging gives anti-aliased RGB; the silhouette is the
averaged coverage thresholded at 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
from pytorch3d.structures import Meshes

from a3d_core.geometry import KATO_FOV_DEG, Viewpoint, eye_positions, look_at_cameras


@dataclass
class RenderSettings:
    """How meshes become images.

    image_size: output images are ``image_size x image_size`` (Kato's renders: 64).
    supersample: render at this multiple of the size and average down (1 = no anti-aliasing).
    fov_degrees: perspective field of view (Kato: 30, i.e. viewing half-angle 15).
    ambient, diffuse, specular, shininess: Blinn-Phong terms; colour = texel * (ambient +
        diffuse * max(0, n.l)) + specular * max(0, n.h) ** shininess, clamped to [0, 1].
    light_elevation_deg, light_azimuth_deg: the key light's direction relative to the camera
        (up and to the side of the viewing direction).
    background: RGB in [0, 1] where no face is seen.
    """

    image_size: int = 64
    supersample: int = 1
    fov_degrees: float = KATO_FOV_DEG
    ambient: float = 0.4
    diffuse: float = 0.6
    specular: float = 0.15
    shininess: float = 16.0
    light_elevation_deg: float = 35.0
    light_azimuth_deg: float = 25.0
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.image_size < 4:
            raise ValueError(f"image_size must be at least 4, got {self.image_size}")
        if self.supersample < 1:
            raise ValueError(f"supersample must be a positive integer, got {self.supersample}")
        if not 0 < self.fov_degrees < 180:
            raise ValueError(f"fov_degrees must be in (0, 180), got {self.fov_degrees}")
        for name in ("ambient", "diffuse", "specular"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if len(self.background) != 3 or not all(0.0 <= c <= 1.0 for c in self.background):
            raise ValueError(f"background must be three values in [0, 1], got {self.background}")


@dataclass
class RenderedViews:
    """``rgb (V, 3, S, S)`` float in [0, 1] and ``silhouette (V, S, S)`` bool, one per viewpoint."""

    rgb: torch.Tensor
    silhouette: torch.Tensor


def _camera_frame(viewpoint: Viewpoint) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit vectors ``(V, 3)`` towards the eye, to the camera's side and up the image."""
    towards_eye = F.normalize(eye_positions(viewpoint), dim=-1)
    world_up = torch.tensor([0.0, 1.0, 0.0], device=towards_eye.device).expand_as(towards_eye)
    side = F.normalize(torch.linalg.cross(world_up, towards_eye), dim=-1)
    up = torch.linalg.cross(towards_eye, side)
    return towards_eye, side, up


class MeshRenderer:
    """Hard-rasterised, flat-shaded renders of one mesh at several viewpoints.

    ``renderer(mesh, viewpoint)``: ``mesh`` is a ``pytorch3d.structures.Meshes`` holding ONE mesh
    with textures (vertex colours or UV); ``viewpoint`` holds ``V`` views. Returns
    :class:`RenderedViews` with ``rgb (V, 3, S, S)`` and ``silhouette (V, S, S)``.
    """

    def __init__(self, settings: RenderSettings | None = None) -> None:
        self.settings = settings or RenderSettings()

    def __call__(self, mesh: Meshes, viewpoint: Viewpoint) -> RenderedViews:
        if len(mesh) != 1:
            raise ValueError(f"MeshRenderer renders one mesh at a time, got a batch of {len(mesh)}")
        if mesh.textures is None:
            raise ValueError("the mesh has no textures (give it per-vertex colours or a UV texture)")
        settings = self.settings
        views = len(viewpoint)
        device = mesh.device
        viewpoint = viewpoint.to(device)
        meshes = mesh.extend(views)
        size = settings.image_size * settings.supersample
        rasterizer = MeshRasterizer(
            cameras=look_at_cameras(viewpoint, fov_degrees=settings.fov_degrees),
            raster_settings=RasterizationSettings(image_size=size, blur_radius=0.0, faces_per_pixel=1, bin_size=0),
        )
        fragments = rasterizer(meshes)
        face_index = fragments.pix_to_face[..., 0]  # (V, H, W), packed face ids, -1 = background
        covered = face_index >= 0

        towards_eye, side, up = _camera_frame(viewpoint)
        elevation, azimuth = math.radians(settings.light_elevation_deg), math.radians(settings.light_azimuth_deg)
        # (V, 3)
        light = F.normalize(
            math.cos(elevation) * (math.cos(azimuth) * towards_eye + math.sin(azimuth) * side)
            + math.sin(elevation) * up,
            dim=-1,
        )
        half = F.normalize(light + towards_eye, dim=-1)

        vertices, faces = meshes.verts_packed(), meshes.faces_packed()
        corners = vertices[faces]  # (V * F, 3, 3)
        normals = F.normalize(torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), dim=-1)
        view_of_face = meshes.faces_packed_to_mesh_idx()
        eye = eye_positions(viewpoint)[view_of_face]
        facing = torch.sign(((eye - corners.mean(dim=1)) * normals).sum(-1, keepdim=True))
        normals = normals * torch.where(facing == 0, torch.ones_like(facing), facing)
        diffuse_term = (normals * light[view_of_face]).sum(-1).clamp(min=0.0)
        specular_term = (normals * half[view_of_face]).sum(-1).clamp(min=0.0) ** settings.shininess

        safe_index = face_index.clamp(min=0)
        texels = meshes.sample_textures(fragments)[..., 0, :3]  # (V, H, W, 3)
        shading = settings.ambient + settings.diffuse * diffuse_term[safe_index]
        rgb = (texels * shading[..., None] + settings.specular * specular_term[safe_index][..., None]).clamp(0.0, 1.0)
        background = torch.tensor(settings.background, dtype=rgb.dtype, device=device)
        rgb = torch.where(covered[..., None], rgb, background).permute(0, 3, 1, 2)
        coverage = covered.to(rgb.dtype)[:, None]
        if settings.supersample > 1:
            rgb = F.avg_pool2d(rgb, settings.supersample)
            coverage = F.avg_pool2d(coverage, settings.supersample)
        return RenderedViews(rgb=rgb.contiguous(), silhouette=coverage[:, 0] >= 0.5)
