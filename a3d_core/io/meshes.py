"""Writing what stage 2 reconstructs: meshes (OBJ, PLY), masks (PNG) and turntable GIFs.

Every file is written atomically: to a temporary sibling, then renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from pytorch3d.io import save_obj, save_ply
from pytorch3d.renderer import (
    HardPhongShader,
    MeshRasterizer,
    MeshRenderer,
    PointLights,
    RasterizationSettings,
    TexturesVertex,
)
from pytorch3d.structures import Meshes

from a3d_core.geometry import KATO_DISTANCE, KATO_ELEVATION_DEG, KATO_FOV_DEG, Viewpoint, eye_positions, look_at_cameras
from a3d_core.io.atomic import atomic_write_bytes, atomic_write_with

MESH_GREY = (0.75, 0.75, 0.78)


def _check_mesh(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(
            f"a mesh needs vertices (V, 3) and faces (F, 3), got {tuple(vertices.shape)}, {tuple(faces.shape)}"
        )
    return vertices.detach().float().cpu(), faces.detach().long().cpu()


def write_obj(path: str | os.PathLike, vertices: torch.Tensor, faces: torch.Tensor) -> Path:
    """Write a mesh (vertices ``(V, 3)``, faces ``(F, 3)``) as a Wavefront OBJ file."""
    vertices, faces = _check_mesh(vertices, faces)
    return atomic_write_with(path, lambda temporary: save_obj(temporary, vertices, faces, decimal_places=6))


def write_ply(path: str | os.PathLike, vertices: torch.Tensor, faces: torch.Tensor) -> Path:
    """Write a mesh (vertices ``(V, 3)``, faces ``(F, 3)``) as a binary PLY file."""
    vertices, faces = _check_mesh(vertices, faces)
    return atomic_write_with(path, lambda temporary: save_ply(temporary, vertices, faces))


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a ``(H, W)`` or ``(H, W, 3)`` uint8 array as PNG."""
    return iio.imwrite("<bytes>", np.ascontiguousarray(image), extension=".png")


def write_mask_png(path: str | os.PathLike, mask: torch.Tensor | np.ndarray, threshold: float = 0.5) -> Path:
    """Write a mask ``(H, W)`` (probabilities or binary) as a black/white PNG: 255 where ``mask > threshold``."""
    mask = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be (H, W), got shape {mask.shape}")
    return atomic_write_bytes(path, png_bytes(np.where(mask > threshold, 255, 0).astype(np.uint8)))


def write_rgb_png(path: str | os.PathLike, rgb: torch.Tensor) -> Path:
    """Write an image ``(3, H, W)`` in [0, 1] as an RGB PNG."""
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"an RGB image must be (3, H, W), got {tuple(rgb.shape)}")
    array = (rgb.detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return atomic_write_bytes(path, png_bytes(array))


def render_turntable(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    num_frames: int = 24,
    image_size: int = 128,
    elevation_deg: float = KATO_ELEVATION_DEG,
    distance: float = KATO_DISTANCE,
    background: float = 1.0,
) -> np.ndarray:
    """Shaded renders of one mesh at ``num_frames`` azimuths evenly spaced over 360 degrees.

    vertices ``(V, 3)``, faces ``(F, 3)`` -> frames ``(num_frames, image_size, image_size, 3)``
    uint8: a grey Phong-shaded mesh lit from the camera, Kato's elevation and distance.
    """
    if num_frames < 1 or image_size < 8:
        raise ValueError(f"a turntable needs num_frames >= 1 and image_size >= 8, got {num_frames}, {image_size}")
    vertices, faces = _check_mesh(vertices, faces)
    azimuths = torch.arange(num_frames, dtype=torch.float32) * (360.0 / num_frames)
    viewpoint = Viewpoint.from_degrees(elevation_deg, azimuths, distance)
    meshes = Meshes(
        verts=[vertices] * num_frames,
        faces=[faces] * num_frames,
        textures=TexturesVertex([torch.tensor(MESH_GREY).expand_as(vertices)] * num_frames),
    )
    cameras = look_at_cameras(viewpoint, fov_degrees=KATO_FOV_DEG)
    lights = PointLights(location=eye_positions(viewpoint))
    renderer = MeshRenderer(
        rasterizer=MeshRasterizer(
            cameras=cameras, raster_settings=RasterizationSettings(image_size=image_size, bin_size=0)
        ),
        shader=HardPhongShader(cameras=cameras, lights=lights),
    )
    with torch.no_grad():
        images = renderer(meshes)
    rgb, alpha = images[..., :3], images[..., 3:]
    rgb = rgb * alpha + background * (1.0 - alpha)
    return (rgb.clamp(0, 1) * 255).round().byte().numpy()


def write_gif(path: str | os.PathLike, frames: np.ndarray, frame_ms: int = 80) -> Path:
    """Write frames ``(N, H, W, 3)`` uint8 as a looping GIF."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"GIF frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    return atomic_write_bytes(path, iio.imwrite("<bytes>", frames, extension=".gif", duration=frame_ms, loop=0))
