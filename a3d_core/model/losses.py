"""Losses of 3D-ASM (paper 3.6) and the mesh regularisers of SoftRas.

- ``L_R = mean_i (1 - softIoU(M~_i^a, M-_i^a))`` on the rendered coarse amodal mask (eq. 1).
- ``L_E``: binary cross-entropy of the refined mask, weighted 1 inside the ground-truth visible
  region and ``lambda`` (0.5) outside (eq. 2). Eq. 2 sums over pixels; here the sum is divided
  by the pixel count, so the weight of L_E does not depend on the input size S.
- Laplacian (weight 5e-3) and flatten (5e-4) regularisers, defined as in SoftRas: the squared
  uniform Laplacian summed over vertices, and ``(1 + cos theta)^2`` summed over the edges shared
  by two faces, theta being the angle between the two faces across the edge (0 when flat).
- Cross-entropy of the classification branch.
- With several azimuth hypotheses (``model.viewpoint``), ``L_R`` is that of the hypothesis
  closest to the amodal mask (not in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class LossSettings:
    """Weights of every term (0 switches a term off); ``edge_outside_visible`` is eq. 2's lambda;
    ``hypothesis_score`` weighs the cross-entropy of scored azimuth hypotheses (not in the paper,
    :mod:`a3d_core.model.viewpoint`); ``view_cycle_camera`` and ``view_cycle_shape`` the view
    cycle's two terms (not in the paper, :mod:`a3d_core.model.view_cycle`; 0: off; ``None``: the
    default, ``VIEW_CYCLE_WEIGHT`` where a mesh branch exists and 0 for the 2D kinds, resolved by
    :meth:`for_branch` when a network is built); ``camera_supervision`` the distance of the
    predicted camera from the true one, used only with ``ViewpointSettings.camera="supervised"``
    (not in the paper, :mod:`a3d_core.model.viewpoint`)."""

    VIEW_CYCLE_WEIGHT = 1.0

    reconstruction: float = 1.0
    edge_refine: float = 1.0
    edge_outside_visible: float = 0.5
    laplacian: float = 5e-3
    flatten: float = 5e-4
    classification: float = 1.0
    hypothesis_score: float = 0.1
    view_cycle_camera: float | None = None
    view_cycle_shape: float | None = None
    camera_supervision: float = 1.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None and item.name in ("view_cycle_camera", "view_cycle_shape"):
                continue
            if not value >= 0.0 or value == float("inf"):
                raise ValueError(f"loss weight {item.name} must be finite and non-negative, got {value}")

    def for_branch(self, has_mesh: bool) -> "LossSettings":
        """These weights with the view cycle's unset (``None``) weights resolved for a network with
        (``has_mesh``) or without a mesh branch."""
        default = self.VIEW_CYCLE_WEIGHT if has_mesh else 0.0
        return replace(
            self,
            view_cycle_camera=default if self.view_cycle_camera is None else self.view_cycle_camera,
            view_cycle_shape=default if self.view_cycle_shape is None else self.view_cycle_shape,
        )


def soft_iou(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Soft IoU per instance: ``sum(p t) / sum(p + t - p t)`` over pixels.

    prediction, target: ``(B, H, W)`` in [0, 1]. Returns ``(B,)``; 1 for identical binary masks,
    0 for disjoint ones (and ~0 when both are empty).
    """
    if prediction.shape != target.shape or prediction.ndim != 3:
        raise ValueError(
            f"soft_iou expects two (B, H, W) tensors, got {tuple(prediction.shape)}, {tuple(target.shape)}"
        )
    intersection = (prediction * target).sum(dim=(1, 2))
    union = (prediction + target - prediction * target).sum(dim=(1, 2))
    return intersection / (union + eps)


def reconstruction_loss(coarse: torch.Tensor, amodal: torch.Tensor) -> torch.Tensor:
    """``L_R`` (eq. 1): ``mean(1 - softIoU)`` of ``(B, H, W)`` masks; a scalar."""
    return (1.0 - soft_iou(coarse, amodal)).mean()


def edge_refine_loss(
    logits: torch.Tensor, amodal: torch.Tensor, visible: torch.Tensor, outside_weight: float = 0.5
) -> torch.Tensor:
    """``L_E`` (eq. 2): BCE of refined logits ``(B, H, W)`` against the amodal mask ``(B, H, W)``,
    weighted 1 where ``visible`` ``(B, H, W)`` is 1 and ``outside_weight`` elsewhere; the mean
    over pixels and instances (a scalar).
    """
    if not logits.shape == amodal.shape == visible.shape or logits.ndim != 3:
        raise ValueError(
            f"edge_refine_loss expects three (B, H, W) tensors, got "
            f"{tuple(logits.shape)}, {tuple(amodal.shape)}, {tuple(visible.shape)}"
        )
    weights = visible + outside_weight * (1.0 - visible)
    return F.binary_cross_entropy_with_logits(logits, amodal, weight=weights, reduction="mean")


def classification_loss(logits: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class logits ``(B, C)`` against class indices ``(B,)``."""
    return F.cross_entropy(logits, categories)


def adjacent_face_pairs(faces: torch.Tensor) -> torch.Tensor:
    """Every edge shared by two faces, with the two opposite vertices: ``(E, 4)`` rows ``(v0, v1, v2, v3)``.

    ``(v0, v1)`` is the shared edge, ``v2`` the third vertex of one face and ``v3`` of the other.
    Boundary edges (one face) are left out; an edge of more than two faces keeps its first two.
    """
    corners = [(0, 1, 2), (1, 2, 0), (2, 0, 1)]
    edges = torch.cat([faces[:, [a, b]] for a, b, _ in corners])
    opposite = torch.cat([faces[:, c] for _, _, c in corners])
    edges, _ = edges.sort(dim=1)
    keys = edges[:, 0] * (int(faces.max()) + 1) + edges[:, 1]
    keys, order = keys.sort(stable=True)
    edges, opposite = edges[order], opposite[order]
    first_of_pair = keys[:-1] == keys[1:]
    first_of_pair[1:] &= keys[1:-1] != keys[:-2]
    starts = first_of_pair.nonzero().squeeze(1)
    return torch.stack([edges[starts, 0], edges[starts, 1], opposite[starts], opposite[starts + 1]], dim=1)


def unique_edges(faces: torch.Tensor) -> torch.Tensor:
    """The undirected edges of a face list, each once: ``(E, 2)`` with ``v0 < v1``."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    return torch.unique(edges, dim=0)


class MeshRegularizer(nn.Module):
    """SoftRas' Laplacian and flatten losses for meshes sharing one face list ``(F, 3)``.

    laplacian(vertices ``(B, V, 3)``) and flatten(vertices ``(B, V, 3)``) return scalars: the
    per-mesh sums, averaged over the batch.
    """

    def __init__(self, faces: torch.Tensor, num_vertices: int) -> None:
        super().__init__()
        faces = faces.detach().long()
        self.num_vertices = num_vertices
        self.register_buffer("edges", unique_edges(faces), persistent=False)
        self.register_buffer("face_pairs", adjacent_face_pairs(faces), persistent=False)
        degree = torch.zeros(num_vertices).index_add_(0, self.edges.flatten(), torch.ones(self.edges.numel()))
        self.register_buffer("degree", degree, persistent=False)

    def uniform_laplacian(self, vertices: torch.Tensor) -> torch.Tensor:
        """``v_i - mean(neighbours of v_i)`` for every vertex: ``(B, V, 3)`` (0 for isolated vertices)."""
        start, end = self.edges[:, 0], self.edges[:, 1]
        neighbour_sum = torch.zeros_like(vertices)
        neighbour_sum = neighbour_sum.index_add(1, start, vertices[:, end]).index_add(1, end, vertices[:, start])
        degree = self.degree.to(vertices.dtype)[None, :, None]
        laplacian = vertices - neighbour_sum / degree.clamp(min=1.0)
        return torch.where(degree > 0, laplacian, torch.zeros_like(laplacian))

    def laplacian(self, vertices: torch.Tensor) -> torch.Tensor:
        return self.uniform_laplacian(vertices).pow(2).sum(dim=(1, 2)).mean()

    def flatten(self, vertices: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        v0, v1, v2, v3 = (vertices[:, self.face_pairs[:, k]] for k in range(4))
        edge = v1 - v0
        edge_sq = edge.pow(2).sum(-1, keepdim=True) + eps

        def across_edge(point: torch.Tensor) -> torch.Tensor:
            offset = point - v0
            return offset - edge * (offset * edge).sum(-1, keepdim=True) / edge_sq

        first, second = across_edge(v2), across_edge(v3)
        norms = (first.pow(2).sum(-1) + eps).sqrt() * (second.pow(2).sum(-1) + eps).sqrt()
        cosine = (first * second).sum(-1) / norms
        return (cosine + 1.0).pow(2).sum(dim=1).mean()
