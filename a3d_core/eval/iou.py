"""Box and mask IoU in torch, with COCO's crowd rule (paper 4.2 evaluates with COCO AP).

For a crowd ground truth COCO scores a detection by the part of the detection inside the crowd
region: ``iou = |d ∩ g| / |d|`` (pycocotools ``maskApi.c``, ``bbIou`` and ``rleIou``). Every
division is done in float64 on integer pixel counts, so the values equal pycocotools' bit for bit.
"""

from __future__ import annotations

import torch

# float32 sums of 0/1 products are exact up to 2**24; longer pixel runs are summed in chunks.
EXACT_FLOAT32_SUM = 2**24


def box_iou(detections: torch.Tensor, ground_truth: torch.Tensor, crowd: torch.Tensor) -> torch.Tensor:
    """IoU of boxes ``[x, y, w, h]``, as pycocotools ``bbIou`` computes it.

    Args:
        detections: ``(..., D, 4)`` float64 boxes.
        ground_truth: ``(..., G, 4)`` float64 boxes.
        crowd: ``(..., G)`` bool; crowd columns divide by the detection's area only.

    Returns:
        ``(..., D, G)`` float64; 0 where boxes do not overlap with positive width and height.
    """
    d = detections.to(torch.float64).unsqueeze(-2)
    g = ground_truth.to(torch.float64).unsqueeze(-3)
    width = torch.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - torch.maximum(d[..., 0], g[..., 0])
    height = torch.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - torch.maximum(d[..., 1], g[..., 1])
    overlap = (width > 0) & (height > 0)
    intersection = width * height
    area_d = d[..., 2] * d[..., 3]
    area_g = g[..., 2] * g[..., 3]
    union = torch.where(crowd.unsqueeze(-2), area_d, area_d + area_g - intersection)
    return torch.where(
        overlap, intersection / torch.where(overlap, union, torch.ones_like(union)), torch.zeros_like(union)
    )


def mask_intersections(detections: torch.Tensor, ground_truth: torch.Tensor) -> torch.Tensor:
    """Pixel counts ``|d ∩ g|`` of binary masks, as a matrix product chunked over pixels.

    Args:
        detections: ``(D, P)`` masks flattened to ``P`` pixels (any numeric or bool dtype).
        ground_truth: ``(G, P)`` masks on the same pixels.

    Returns:
        ``(D, G)`` int64, exact for any ``P`` (each chunk of at most 2**24 pixels is summed in
        float32, which is exact there, and chunks are added as integers).
    """
    total = torch.zeros((detections.shape[0], ground_truth.shape[0]), dtype=torch.int64, device=detections.device)
    if total.numel() == 0:
        return total
    for start in range(0, detections.shape[1], EXACT_FLOAT32_SUM):
        stop = start + EXACT_FLOAT32_SUM
        d = detections[:, start:stop].to(torch.float32)
        g = ground_truth[:, start:stop].to(torch.float32)
        total += (d @ g.T).to(torch.int64)
    return total


def iou_from_counts(
    intersection: torch.Tensor, area_d: torch.Tensor, area_g: torch.Tensor, crowd: torch.Tensor
) -> torch.Tensor:
    """IoU float64 from pixel counts, with COCO's crowd rule; all arguments broadcast together.

    Args:
        intersection: integer counts ``|d ∩ g|``.
        area_d: detection areas. area_g: ground-truth areas. crowd: bool, per ground truth.

    Disjoint masks give 0 (so do two empty masks), as pycocotools' box prefilter does.
    """
    inter = intersection.to(torch.float64)
    area_d = area_d.to(torch.float64)
    union = torch.where(crowd, area_d, area_d + area_g.to(torch.float64) - inter)
    positive = inter > 0
    return torch.where(positive, inter / torch.where(positive, union, torch.ones_like(union)), torch.zeros_like(union))


def pairwise_mask_iou(detections: torch.Tensor, ground_truth: torch.Tensor, crowd: torch.Tensor) -> torch.Tensor:
    """IoU of every detection with every ground truth, as ``pycocotools.mask.iou`` computes it on RLEs.

    Dense binary masks; :func:`~a3d_core.eval.miou.paired_mask_iou` instead pairs mask ``i`` with mask ``i``.

    Args:
        detections: ``(D, H, W)`` (or ``(D, P)``) binary masks.
        ground_truth: ``(G, H, W)`` (or ``(G, P)``) binary masks of the same size.
        crowd: ``(G,)`` bool.

    Returns:
        ``(D, G)`` float64.
    """
    if detections.shape[1:] != ground_truth.shape[1:]:
        raise ValueError(f"mask sizes differ: {tuple(detections.shape[1:])} vs {tuple(ground_truth.shape[1:])}")
    d = detections.reshape(detections.shape[0], -1) != 0
    g = ground_truth.reshape(ground_truth.shape[0], -1) != 0
    intersection = mask_intersections(d, g)
    return iou_from_counts(
        intersection, d.sum(1).unsqueeze(1), g.sum(1).unsqueeze(0), crowd.to(torch.bool).unsqueeze(0)
    )
