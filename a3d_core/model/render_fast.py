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
input that requires one: inference), the rasterizer is not run at all
(:func:`soft_silhouettes_in_face_boxes`): its CPU kernel tests every face at every pixel, and the
K-nearest selection matters only where more than K faces lie within the blur radius of a pixel.
Each face is evaluated only at the pixel centres inside its bounding box grown by the blur radius,
with the kernel's own tests and arithmetic (zero-area faces and faces reaching behind the camera
skipped, the same barycentric inside test and squared distances), and every face found within the
blur radius is aggregated; a mesh with a pixel of more than K such faces, or with a non-finite
vertex, goes through the rasterizer and its own ``dists`` instead, aggregated as pytorch3d's
``SoftSilhouetteShader`` does (:func:`soft_silhouettes_from_rasterizer`). Either way the
silhouettes are the reference's to float rounding.

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


# A (face, pixel) candidate of :func:`soft_silhouettes_in_face_boxes` holds about this many
# rasterizer buffer elements' worth of temporaries (coordinates, distances, indices), so that
# ``max_chunk_elements`` bounds both paths' memory alike.
CANDIDATE_ELEMENTS = 4

# A mesh whose faces' boxes hold more than ``H * W * F / CANDIDATE_COST`` (face, pixel) candidates
# (faces spanning much of the image) is rasterized instead: evaluating a candidate in torch costs
# a few of the CPU kernel's face tests (docs/renderer.md), and the kernel tests every face at
# every pixel.
CANDIDATE_COST = 4


def soft_silhouettes_in_face_boxes(
    vertices_ndc: torch.Tensor,
    faces: torch.Tensor,
    image_size: int,
    sigma: float,
    blur_radius: float,
    faces_per_pixel: int,
    max_chunk_elements: int,
) -> torch.Tensor:
    """SoftRas silhouettes ``(B, S, S)`` without gradients, each face evaluated in its bounding box (paper 3.4).

    ``vertices_ndc`` ``(B, V, 3)`` from :func:`project_to_ndc`; ``faces`` ``(F, 3)``. The
    rasterizer's choice of faces is every face within ``blur_radius`` of a pixel centre as long as
    there are at most ``faces_per_pixel`` of them, so those are aggregated directly (module
    docstring). Rasterized instead (:func:`nearest_faces`): the meshes with a pixel of more, with a
    non-finite vertex, or cheaper to rasterize (``CANDIDATE_COST``). Meshes are evaluated in groups
    within ``max_chunk_elements`` (``CANDIDATE_ELEMENTS`` per candidate; at least one mesh per group).
    """
    vertices_ndc = vertices_ndc.detach()
    boxes = _FaceBoxes.of(vertices_ndc, faces, image_size, blur_radius)
    candidates = boxes.pixel_counts.sum(dim=1)  # (B,)
    finite = torch.isfinite(vertices_ndc).flatten(1).all(dim=1)  # (B,)
    in_boxes = finite & (candidates * CANDIDATE_COST <= image_size * image_size * faces.shape[0])  # (B,)
    silhouettes = vertices_ndc.new_empty(len(vertices_ndc), image_size, image_size)  # (B, S, S)
    crowded = torch.zeros_like(in_boxes)  # (B,)
    evaluated = in_boxes.nonzero().flatten()  # (E,)
    candidate_budget = max(1, max_chunk_elements // CANDIDATE_ELEMENTS)
    for start, stop in _mesh_ranges(candidates[evaluated].tolist(), candidate_budget):
        group = evaluated[start:stop]  # (G,)
        log_transmittance, faces_at_pixel = boxes.log_transmittance(group, sigma)  # (G, S, S) each
        silhouettes[group] = -torch.expm1(log_transmittance)
        crowded[group] = faces_at_pixel.flatten(1).amax(dim=1) > faces_per_pixel
    rasterized = (~in_boxes | crowded).nonzero().flatten()  # (R,)
    meshes_per_chunk = max(1, max_chunk_elements // (image_size * image_size * faces_per_pixel))
    for first in range(0, len(rasterized), meshes_per_chunk):
        chunk = rasterized[first : first + meshes_per_chunk]  # (chunk,)
        pix_to_face, dists = nearest_faces(vertices_ndc[chunk], faces, image_size, blur_radius, faces_per_pixel)
        silhouettes[chunk] = soft_silhouettes_from_rasterizer(pix_to_face, dists, sigma)
    return silhouettes


def _mesh_ranges(candidates: list[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` ranges of meshes with ``candidates`` each, at most ``budget``
    per range unless one mesh alone has more."""
    ranges, start, total = [], 0, 0
    for index, count in enumerate(candidates):
        if index > start and total + count > budget:
            ranges.append((start, index))
            start, total = index, 0
        total += count
    if candidates:
        ranges.append((start, len(candidates)))
    return ranges


class _FaceBoxes:
    """Each face's pixel-centre box and the per-face terms of pytorch3d's CPU kernel
    (``RasterizeMeshesNaiveCpu``), every tensor ``(B, F)``, in the kernel's float32 arithmetic and
    operand order so that its tests and distances come out the same."""

    def __init__(self, **terms: torch.Tensor) -> None:
        self.__dict__.update(terms)

    @classmethod
    def of(cls, vertices_ndc: torch.Tensor, faces: torch.Tensor, image_size: int, blur_radius: float) -> "_FaceBoxes":
        """The boxes of the faces ``(F, 3)`` of meshes ``vertices_ndc`` ``(B, V, 3)`` on an
        ``image_size`` square, grown by ``sqrt(blur_radius)`` as the kernel grows them."""
        corners = vertices_ndc[:, faces.to(vertices_ndc.device)]  # (B, F, 3, 3)
        x, y, z = corners.unbind(-1)  # (B, F, 3) each
        (x0, x1, x2), (y0, y1, y2) = x.unbind(-1), y.unbind(-1)  # (B, F) each
        area = (x0 - x1) * (y2 - y1) - (y0 - y1) * (x2 - x1)  # (B, F): EdgeFunctionForward(v0, v1, v2)
        growth = torch.tensor(blur_radius, dtype=x.dtype).sqrt()  # () float32, as the kernel's sqrt
        x_min, x_max = x.amin(-1) - growth, x.amax(-1) + growth  # (B, F)
        y_min, y_max = y.amin(-1) - growth, y.amax(-1) + growth  # (B, F)
        drawn = (area.abs() > PYTORCH3D_EPSILON) & (z.amin(-1) >= PYTORCH3D_EPSILON)  # (B, F)
        drawn &= torch.isfinite(corners).flatten(2).all(dim=-1)
        first_column, columns = _centre_span(x_min, x_max, image_size, drawn)  # (B, F) long each
        first_row, rows = _centre_span(y_min, y_max, image_size, drawn)  # (B, F) long each
        return cls(
            box=(x_min, x_max, y_min, y_max),
            first_column=first_column,
            columns=columns,
            first_row=first_row,
            pixel_counts=columns * rows,  # (B, F) long
            corners=(x0, y0, x1, y1, x2, y2),
            # Barycentric denominators, EdgeFunctionForward(v2, v0, v1) + kEpsilon, and the edges
            # v0-v1, v0-v2, v1-v2 of the distance as (start, direction, squared length).
            doubled_area=(x2 - x0) * (y1 - y0) - (y2 - y0) * (x1 - x0) + PYTORCH3D_EPSILON,  # (B, F)
            segments=[_segment(x0, y0, x1, y1), _segment(x0, y0, x2, y2), _segment(x1, y1, x2, y2)],
            image_size=image_size,
            blur_radius=torch.tensor(blur_radius, dtype=x.dtype),
        )

    def log_transmittance(self, meshes: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Of the meshes ``meshes`` ``(M,)`` long: ``sum_f log(1 - D_f(p))`` over the faces within the
        blur radius of each pixel ``p`` ``(M, S, S)``, and how many faces those are ``(M, S, S)`` long."""
        size = self.image_size
        counts = self.pixel_counts.index_select(0, meshes).flatten()  # (M F,)
        face = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)  # (N,)
        offset = torch.arange(len(face), device=face.device) - (counts.cumsum(0) - counts).index_select(0, face)  # (N,)

        def at(term: torch.Tensor) -> torch.Tensor:
            return term.index_select(0, meshes).flatten().index_select(0, face)  # (N,)

        columns = at(self.columns)  # (N,)
        column, row = at(self.first_column) + offset % columns, at(self.first_row) + offset // columns  # (N,) each
        centres = pixel_centres_ndc(size, size, face.device)  # (S, S, 2)
        px, py = centres[0, :, 0].index_select(0, column), centres[:, 0, 1].index_select(0, row)  # (N,) each
        x_min, x_max, y_min, y_max = (at(bound) for bound in self.box)
        in_box = (px <= x_max) & (px >= x_min) & (py <= y_max) & (py >= y_min)  # (N,)
        x0, y0, x1, y1, x2, y2 = (at(coordinate) for coordinate in self.corners)
        doubled_area = at(self.doubled_area)
        inside = (
            (((px - x1) * (y2 - y1) - (py - y1) * (x2 - x1)) / doubled_area > 0)
            & (((px - x2) * (y0 - y2) - (py - y2) * (x0 - x2)) / doubled_area > 0)
            & (((px - x0) * (y1 - y0) - (py - y0) * (x1 - x0)) / doubled_area > 0)
        )  # (N,): all three barycentric coordinates > 0
        distance = None
        for segment in self.segments:
            to_segment = _squared_distance_to_segment(px, py, *(at(term) for term in segment))  # (N,)
            distance = to_segment if distance is None else torch.minimum(distance, to_segment)
        within = in_box & (inside | (distance < self.blur_radius))  # (N,)
        pixel = (((face // self.pixel_counts.shape[1]) * size + row) * size + column)[within]  # (P,)
        signed = torch.where(inside, -distance, distance)[within]  # (P,)
        # log(1 - sigmoid(-d / sigma)) = logsigmoid(d / sigma), as the differentiable path sums it.
        total = torch.zeros(len(meshes) * size * size, dtype=signed.dtype, device=signed.device)
        total = total.index_add_(0, pixel, F.logsigmoid(signed / sigma))  # (M S S,)
        faces_at_pixel = torch.bincount(pixel, minlength=len(total))  # (M S S,)
        return total.view(-1, size, size), faces_at_pixel.view(-1, size, size)


def _centre_span(
    low: torch.Tensor, high: torch.Tensor, size: int, drawn: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first index and the number ``(B, F)`` long of the pixel centres ``1 - (2 i + 1) / size``
    (decreasing in ``i``) in ``[low, high]`` ``(B, F)``, one more on each side against rounding
    (the exact test is the kernel's); none where not ``drawn``."""
    low, high = torch.where(drawn, low, 0.0), torch.where(drawn, high, 0.0)  # (B, F)
    first = ((size * (1 - high) - 1) / 2).floor().clamp(0, size)  # (B, F)
    last = ((size * (1 - low) - 1) / 2).ceil().clamp(-1, size - 1)  # (B, F)
    count = (last - first + 1).clamp(min=0) * drawn  # (B, F)
    return first.long(), count.long()


def _segment(
    start_x: torch.Tensor, start_y: torch.Tensor, end_x: torch.Tensor, end_y: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """An edge ``(B, F)`` per coordinate as ``PointLineDistanceForward`` reads it: start, end,
    direction ``end - start`` and its squared length."""
    direction_x, direction_y = end_x - start_x, end_y - start_y  # (B, F) each
    return (
        start_x,
        start_y,
        end_x,
        end_y,
        direction_x,
        direction_y,
        direction_x * direction_x + direction_y * direction_y,
    )


def _squared_distance_to_segment(
    px: torch.Tensor,
    py: torch.Tensor,
    start_x: torch.Tensor,
    start_y: torch.Tensor,
    end_x: torch.Tensor,
    end_y: torch.Tensor,
    direction_x: torch.Tensor,
    direction_y: torch.Tensor,
    squared_length: torch.Tensor,
) -> torch.Tensor:
    """pytorch3d's ``PointLineDistanceForward`` ``(N,)`` of points ``(px, py)`` ``(N,)`` each: a
    segment shorter than sqrt(1e-8) measures to its end point."""
    along = (direction_x * (px - start_x) + direction_y * (py - start_y)) / squared_length  # (N,)
    along = along.clamp(0.0, 1.0)
    offset_x, offset_y = px - (start_x + along * direction_x), py - (start_y + along * direction_y)  # (N,) each
    to_end_x, to_end_y = px - end_x, py - end_y  # (N,) each
    return torch.where(
        squared_length <= PYTORCH3D_EPSILON,
        to_end_x * to_end_x + to_end_y * to_end_y,
        offset_x * offset_x + offset_y * offset_y,
    )


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

    ``cameras`` holds B cameras. Where no gradient is needed the faces are evaluated in their
    bounding boxes (:func:`soft_silhouettes_in_face_boxes`); else the batch is rasterized in
    chunks of at most ``max(1, max_chunk_elements // (H * W * K))`` meshes, which bounds the
    rasterizer's ``(chunk, H, W, K)`` buffers, and the distances of the selected faces are
    recomputed in torch (:func:`soft_silhouettes_of_selected_faces`).
    """
    vertices_ndc = project_to_ndc(vertices, cameras)
    if not (torch.is_grad_enabled() and vertices_ndc.requires_grad):
        return soft_silhouettes_in_face_boxes(
            vertices_ndc, faces, image_size, sigma, blur_radius, faces_per_pixel, max_chunk_elements
        )
    meshes_per_chunk = max(1, max_chunk_elements // (image_size * image_size * faces_per_pixel))
    silhouettes = []
    for chunk in vertices_ndc.split(meshes_per_chunk):
        pix_to_face, _ = nearest_faces(chunk, faces, image_size, blur_radius, faces_per_pixel)
        silhouettes.append(soft_silhouettes_of_selected_faces(chunk, faces, pix_to_face, sigma))
    return torch.cat(silhouettes)
