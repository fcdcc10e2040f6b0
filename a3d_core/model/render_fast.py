"""The ``fast`` soft silhouette backend: pytorch3d picks the faces, torch carries the gradients.

pytorch3d's soft rasterizer (``MeshRasterizer``) does two jobs: it *selects* the K nearest faces
within the blur radius of every pixel, and it computes their signed squared distances, whose
gradient it back-propagates in a hand-written kernel. On CPU that backward kernel is the
bottleneck of training (paper 3.4 renders every instance at every step). Selection has no useful
gradient, so this backend runs pytorch3d's rasterizer under ``torch.no_grad`` only to get
``pix_to_face``, then recomputes, with ordinary differentiable torch operations and only for the
(pixel, face) pairs actually selected:

1. the projection of the vertices to NDC with the very same pytorch3d cameras;
2. the squared 2D distance of each pixel centre to each selected face's projected triangle,
   negative when the centre is inside (pytorch3d's ``dists`` semantics);
3. the SoftRas aggregation ``S(p) = 1 - prod_f (1 - sigmoid(-d(p, f) / sigma))`` over the
   selected faces (pytorch3d's ``sigmoid_alpha_blend``), computed as
   ``-expm1(sum_f logsigmoid(d / sigma))``.

Where no gradient is needed (under ``torch.no_grad`` or ``torch.inference_mode``, or with no
input that requires one: inference), recomputing the distances buys nothing; the rasterizer's own
``dists`` are aggregated instead, exactly as pytorch3d's ``SoftSilhouetteShader`` does
(:func:`soft_silhouettes_from_rasterizer`): pytorch3d's forward path, without building its
``Meshes`` from a list or its shader's colour buffers.

Every convention is pytorch3d's, so the two backends agree to float rounding: NDC has +X left
and +Y up, pixel ``(row i, column j)`` of an ``H x W`` image has its centre at
``x = 1 - (2 j + 1) / W``, ``y = 1 - (2 i + 1) / H`` (square images), the inside test is "all
three barycentric coordinates > 0", a degenerate edge (squared length <= 1e-8) measures the
distance to its second end point, and faces with a vertex at depth < 1e-8 (behind or at the
camera) are never selected: there is no clipping, as with ``perspective_correct=False``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch3d.renderer.cameras import CamerasBase
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.structures import Meshes

# pytorch3d's rasterizer epsilon (``kEpsilon`` in rasterize_meshes.py and its C++ kernels).
PYTORCH3D_EPSILON = 1e-8


def project_to_ndc(vertices: torch.Tensor, cameras: CamerasBase) -> torch.Tensor:
    """World vertices ``(B, V, 3)`` -> ``(B, V, 3)``: NDC ``x, y`` and view-space depth ``z``.

    The same sequence of transforms as ``MeshRasterizer.transform`` (world -> view, then the
    camera's projection composed with its to-NDC transform), so the coordinates are the
    reference's. Differentiable with respect to the vertices and the camera parameters.
    """
    vertices_view = cameras.get_world_to_view_transform().transform_points(vertices)
    to_ndc = cameras.get_projection_transform().compose(cameras.get_ndc_camera_transform())
    vertices_ndc = to_ndc.transform_points(vertices_view)
    return torch.cat([vertices_ndc[..., :2], vertices_view[..., 2:]], dim=-1)


def pixel_centres_ndc(height: int, width: int, device: torch.device | str) -> torch.Tensor:
    """NDC coordinates ``(H, W, 2)`` of the pixel centres, as pytorch3d's rasterizer places them.

    Row 0 is the top of the image (largest y) and column 0 its left (largest x: +X points left).
    The shorter side spans [-1, 1]; the longer one is stretched to keep pixels square
    (pytorch3d's ``non_square_ndc_range``).
    """

    def axis(size: int, other: int) -> torch.Tensor:
        ndc_range = 2.0 * size / other if size > other else 2.0
        half_range = ndc_range / 2.0
        reversed_index = torch.arange(size - 1, -1, -1, dtype=torch.float32, device=device)
        return -half_range + (ndc_range * reversed_index + half_range) / size

    ys, xs = torch.meshgrid(axis(height, width), axis(width, height), indexing="ij")
    return torch.stack([xs, ys], dim=-1)


# Corner indices of a triangle's three edges, in pytorch3d's order: the distance uses the segments
# v0-v1, v0-v2, v1-v2 (a degenerate one measures to its second corner), the inside test the
# barycentric numerators edge(p, v1, v2), edge(p, v2, v0), edge(p, v0, v1).
_SEGMENT_STARTS, _SEGMENT_ENDS = [0, 0, 1], [1, 2, 2]
_BARYCENTRIC_STARTS, _BARYCENTRIC_ENDS = [1, 2, 0], [2, 0, 1]


def _edge_function(point: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """pytorch3d's ``EdgeFunctionForward``: the 2D cross product ``(end - start) x (point - start)``,
    in the kernel's operand order so that rounding matches. Shapes ``(..., 2)`` -> ``(...)``."""
    return (point[..., 0] - start[..., 0]) * (end[..., 1] - start[..., 1]) - (point[..., 1] - start[..., 1]) * (
        end[..., 0] - start[..., 0]
    )


def _point_segment_squared_distance(point: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Squared distance from points to segments ``start -> end``; shapes ``(..., 2)`` -> ``(...)``.

    A segment shorter than sqrt(1e-8) counts as its end point (pytorch3d's ``PointLineDistanceForward``).
    """
    direction = end - start
    squared_length = (direction * direction).sum(-1)
    degenerate = squared_length <= PYTORCH3D_EPSILON
    along = ((direction * (point - start)).sum(-1) / torch.where(degenerate, 1.0, squared_length)).clamp(0.0, 1.0)
    offset = point - (start + along[..., None] * direction)
    to_end = point - end
    return torch.where(degenerate, (to_end * to_end).sum(-1), (offset * offset).sum(-1))


def signed_squared_distances(points: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Signed squared distance ``(N,)`` of 2D points ``(N, 2)`` to triangles ``(N, 3, 2)``.

    The squared distance to the nearest edge, negated when the point is strictly inside (all
    barycentric coordinates > 0, computed as pytorch3d does, with its +1e-8 on the doubled
    area): pytorch3d's ``dists`` and SoftRas' ``d(p, f)`` (paper 3.4). The three edges are
    evaluated together, as ``(N, 3)`` tensors.
    """
    doubled_area = _edge_function(triangles[:, 2], triangles[:, 0], triangles[:, 1]) + PYTORCH3D_EPSILON
    barycentric_numerators = _edge_function(
        points[:, None], triangles[:, _BARYCENTRIC_STARTS], triangles[:, _BARYCENTRIC_ENDS]
    )
    inside = (barycentric_numerators / doubled_area[:, None] > 0).all(dim=1)
    edge_distances = _point_segment_squared_distance(
        points[:, None], triangles[:, _SEGMENT_STARTS], triangles[:, _SEGMENT_ENDS]
    )
    nearest_edge = edge_distances.amin(dim=1)
    return torch.where(inside, -nearest_edge, nearest_edge)


@torch.no_grad()
def nearest_faces(
    vertices_ndc: torch.Tensor, faces: torch.Tensor, image_size: int, blur_radius: float, faces_per_pixel: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """pytorch3d's choice of faces, without gradients: ``pix_to_face`` and ``dists``, both ``(B, H, W, K)``.

    ``vertices_ndc`` ``(B, V, 3)`` from :func:`project_to_ndc`; ``faces`` ``(F, 3)``. Entries of
    ``pix_to_face`` index the packed faces (``b * F + f``), nearest first in depth, -1 where fewer
    than K faces lie within ``blur_radius`` (squared NDC distance) of the pixel centre; ``dists``
    are their signed squared distances (-1 where none). The settings are ``MeshRasterizer``'s for
    the reference (naive rasterization, barycentric clipping for the depth order as
    ``blur_radius > 0`` implies, no perspective correction, no culling).
    """
    batch = vertices_ndc.shape[0]
    meshes = Meshes(verts=vertices_ndc.detach(), faces=faces.expand(batch, -1, -1))
    pix_to_face, _, _, dists = rasterize_meshes(
        meshes,
        image_size=image_size,
        blur_radius=blur_radius,
        faces_per_pixel=faces_per_pixel,
        bin_size=0,
        perspective_correct=False,
        clip_barycentric_coords=blur_radius > 0.0,
        cull_backfaces=False,
        z_clip_value=None,
        cull_to_frustum=False,
    )
    return pix_to_face, dists


def soft_silhouettes_from_rasterizer(pix_to_face: torch.Tensor, dists: torch.Tensor, sigma: float) -> torch.Tensor:
    """SoftRas silhouettes ``(B, H, W)`` from the rasterizer's ``pix_to_face`` and ``dists``
    ``(B, H, W, K)``, without gradients: ``SoftSilhouetteShader``'s ``sigmoid_alpha_blend``."""
    probabilities = torch.sigmoid(-dists / sigma) * (pix_to_face >= 0)
    return 1.0 - torch.prod(1.0 - probabilities, dim=-1)


def soft_silhouettes_of_selected_faces(
    vertices_ndc: torch.Tensor, faces: torch.Tensor, pix_to_face: torch.Tensor, sigma: float
) -> torch.Tensor:
    """SoftRas silhouettes ``(B, H, W)`` from the faces selected per pixel (paper 3.4).

    ``vertices_ndc`` ``(B, V, 3)`` carries the gradients; ``pix_to_face`` ``(B, H, W, K)`` packed
    face indices (-1: none). Only the selected (pixel, face) pairs are evaluated.
    """
    batch, num_vertices, _ = vertices_ndc.shape
    _, height, width, faces_per_pixel = pix_to_face.shape
    device = vertices_ndc.device
    packed_faces = (faces.to(device)[None] + num_vertices * torch.arange(batch, device=device)[:, None, None]).reshape(
        -1, 3
    )
    flat_pix_to_face = pix_to_face.reshape(-1, faces_per_pixel)
    pixel_index, slot = (flat_pix_to_face >= 0).nonzero(as_tuple=True)
    triangle_vertices = packed_faces[flat_pix_to_face[pixel_index, slot]]
    triangles = vertices_ndc[..., :2].reshape(-1, 2)[triangle_vertices]
    centres = pixel_centres_ndc(height, width, device).reshape(-1, 2)[pixel_index % (height * width)]
    distances = signed_squared_distances(centres, triangles)
    # log prod_f (1 - sigmoid(-d / sigma)) = sum_f logsigmoid(d / sigma), summed per pixel.
    log_transmittance = torch.zeros(batch * height * width, dtype=vertices_ndc.dtype, device=device)
    log_transmittance = log_transmittance.index_add(0, pixel_index, F.logsigmoid(distances / sigma))
    return (-torch.expm1(log_transmittance)).reshape(batch, height, width)


def render_silhouettes_fast(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: CamerasBase,
    image_size: int,
    sigma: float,
    blur_radius: float,
    faces_per_pixel: int,
    max_chunk_elements: int,
) -> torch.Tensor:
    """Soft silhouettes ``(B, H, W)`` of meshes ``vertices`` ``(B, V, 3)`` sharing ``faces`` ``(F, 3)``.

    ``cameras`` holds B cameras. The batch is rendered in chunks of at most
    ``max(1, max_chunk_elements // (H * W * K))`` meshes, which bounds the rasterizer's
    ``(chunk, H, W, K)`` buffers. Where no gradient is needed the rasterizer's distances are
    aggregated (:func:`soft_silhouettes_from_rasterizer`), else they are recomputed in torch
    (:func:`soft_silhouettes_of_selected_faces`).
    """
    vertices_ndc = project_to_ndc(vertices, cameras)
    differentiable = torch.is_grad_enabled() and vertices_ndc.requires_grad
    meshes_per_chunk = max(1, max_chunk_elements // (image_size * image_size * faces_per_pixel))
    silhouettes = []
    for chunk in vertices_ndc.split(meshes_per_chunk):
        pix_to_face, dists = nearest_faces(chunk, faces, image_size, blur_radius, faces_per_pixel)
        if differentiable:
            silhouettes.append(soft_silhouettes_of_selected_faces(chunk, faces, pix_to_face, sigma))
        else:
            silhouettes.append(soft_silhouettes_from_rasterizer(pix_to_face, dists, sigma))
    return torch.cat(silhouettes)
