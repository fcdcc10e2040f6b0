"""Differentiable soft silhouette renderer: mesh + viewpoint -> coarse amodal mask (paper 3.4).

The paper projects the reconstructed mesh with SoftRas (Liu et al., ICCV 2019). Each face f
contributes ``D_f(p) = sigmoid(-d(p, f) / sigma)`` at pixel p, with ``d`` the signed squared
distance from p to the face's projection (negative inside), and the silhouette aggregates them
as ``S(p) = 1 - prod_f (1 - D_f(p))``. pytorch3d's MeshRasterizer + SoftSilhouetteShader compute
exactly this over the ``faces_per_pixel`` nearest faces: that is the ``pytorch3d`` backend here,
the reference. Its CPU backward pass is slow, so the ``fast`` backend (``render_fast``) lets
pytorch3d only *select* the faces, without gradients, and recomputes the distances and the
aggregation in differentiable torch: same silhouettes and gradients to float rounding, much
faster for forward + backward on CPU. ``auto`` picks per device (``AUTO_BACKEND``);
docs/renderer.md has the measurements (``benchmarks/bm_render.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pytorch3d.renderer import BlendParams, MeshRasterizer, RasterizationSettings, SoftSilhouetteShader
from pytorch3d.structures import Meshes
from torch import nn

from a3d_core.geometry import KATO_FOV_DEG, Viewpoint, look_at_cameras, soft_blur_radius
from a3d_core.model.render_fast import render_silhouettes_fast

BACKENDS = ("auto", "fast", "pytorch3d")

# What ``backend="auto"`` runs on each device type. CPU: ``fast`` (ahead of the reference for
# forward + backward, docs/renderer.md). CUDA: the reference, whose backward is a CUDA
# kernel, until benchmarks/bm_render.py has been run on a GPU and shows ``fast`` ahead there (it
# has not been measured yet). Device types not listed get ``fast``.
AUTO_BACKEND = {"cpu": "fast", "cuda": "pytorch3d"}

# Default bound on B x H x W x K per rasterizer call of the ``fast`` backend: pytorch3d returns
# four (B, H, W, K) buffers (about 28 bytes per element), so 2**22 elements is about 120 MB.
DEFAULT_MAX_CHUNK_ELEMENTS = 2**22


@dataclass
class SilhouetteRendererSettings:
    """SoftRas settings (the paper's renderer: sigma 1e-4) and the backend choice.

    image_size: output masks are ``image_size x image_size``.
    sigma: sharpness of the soft silhouette (SoftRas ``sigma_val``).
    faces_per_pixel: K nearest faces aggregated per pixel.
    fov_degrees: perspective field of view (Kato's viewing half-angle 15 -> 30).
    backend: which implementation renders: ``pytorch3d`` (the reference), ``fast``, or ``auto``
        (chosen per device by ``AUTO_BACKEND``).
    max_chunk_elements: the ``fast`` backend renders the batch in chunks of meshes so that
        chunk x H x W x K stays within this budget (at least one mesh per chunk).
    """

    image_size: int = 64
    sigma: float = 1e-4
    faces_per_pixel: int = 50
    fov_degrees: float = KATO_FOV_DEG
    backend: str = "auto"
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS

    def __post_init__(self) -> None:
        if self.image_size < 1:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if self.sigma <= 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")
        if self.faces_per_pixel < 1:
            raise ValueError(f"faces_per_pixel must be positive, got {self.faces_per_pixel}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if not 0 < self.fov_degrees < 180:
            raise ValueError(f"fov_degrees must be in (0, 180), got {self.fov_degrees}")
        if self.max_chunk_elements < 1:
            raise ValueError(f"max_chunk_elements must be positive, got {self.max_chunk_elements}")


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend that renders on ``device``: ``backend`` itself, or ``AUTO_BACKEND``'s choice for ``auto``."""
    if backend == "auto":
        return AUTO_BACKEND.get(device.type, "fast")
    return backend


class SoftSilhouetteRenderer(nn.Module):
    """Renders soft silhouettes of a batch of meshes sharing one face list.

    forward(vertices (B, V, 3), faces (F, 3) long, viewpoint: Viewpoint of B) -> (B, H, W) in [0, 1],
    differentiable with respect to the vertices and the viewpoint. ``settings.backend`` picks
    the implementation; all backends agree (tests/model/test_render.py).
    """

    def __init__(self, settings: SilhouetteRendererSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or SilhouetteRendererSettings()

    def forward(self, vertices: torch.Tensor, faces: torch.Tensor, viewpoint: Viewpoint) -> torch.Tensor:
        if vertices.ndim != 3 or vertices.shape[-1] != 3:
            raise ValueError(f"vertices must be (B, V, 3), got {tuple(vertices.shape)}")
        if faces.ndim != 2 or faces.shape[-1] != 3:
            raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
        if len(viewpoint) != vertices.shape[0]:
            raise ValueError(f"{len(viewpoint)} viewpoints for {vertices.shape[0]} meshes")
        if resolve_backend(self.settings.backend, vertices.device) == "pytorch3d":
            return render_silhouettes_pytorch3d(vertices, faces, viewpoint, self.settings)
        return render_silhouettes_fast_backend(vertices, faces, viewpoint, self.settings)


def render_silhouettes_fast_backend(
    vertices: torch.Tensor, faces: torch.Tensor, viewpoint: Viewpoint, settings: SilhouetteRendererSettings
) -> torch.Tensor:
    """The ``fast`` backend (``render_fast``) with the reference's cameras and blur radius. Returns ``(B, H, W)``."""
    cameras = look_at_cameras(viewpoint.to(vertices.device), fov_degrees=settings.fov_degrees)
    return render_silhouettes_fast(
        vertices,
        faces.to(vertices.device),
        cameras,
        image_size=settings.image_size,
        sigma=settings.sigma,
        blur_radius=soft_blur_radius(settings.sigma),
        faces_per_pixel=settings.faces_per_pixel,
        max_chunk_elements=settings.max_chunk_elements,
    )


def render_silhouettes_pytorch3d(
    vertices: torch.Tensor, faces: torch.Tensor, viewpoint: Viewpoint, settings: SilhouetteRendererSettings
) -> torch.Tensor:
    """The reference: pytorch3d MeshRasterizer + SoftSilhouetteShader. Returns ``(B, H, W)``."""
    batch = vertices.shape[0]
    meshes = Meshes(verts=list(vertices), faces=[faces.to(vertices.device)] * batch)
    cameras = look_at_cameras(viewpoint.to(vertices.device), fov_degrees=settings.fov_degrees)
    raster_settings = RasterizationSettings(
        image_size=settings.image_size,
        blur_radius=soft_blur_radius(settings.sigma),
        faces_per_pixel=settings.faces_per_pixel,
        bin_size=0,
        perspective_correct=False,
    )
    rasterizer = MeshRasterizer(cameras=cameras, raster_settings=raster_settings)
    shader = SoftSilhouetteShader(blend_params=BlendParams(sigma=settings.sigma, gamma=1e-4))
    fragments = rasterizer(meshes)
    images = shader(fragments, meshes)
    return images[..., 3]
