"""Per-instance mask IoU: mIoU, mIoU_occ and the per-category table (paper 4.2, Table 1).

mIoU (C2F-Seg's definition, FORMATS.md) averages, over ground-truth instances, the IoU of the
instance's amodal mask with the amodal mask predicted for it. Detection-style predictions do not
say which instance they are for, so each non-crowd ground truth takes its **best match**: the
prediction of the same image and category with the highest amodal IoU among those the COCO
evaluation kept (the 100 highest-scoring per image and category); on equal IoU the higher score
wins. No prediction is shared out one-to-one: this is the IoU of the best available prediction,
and an instance without any overlapping prediction counts 0.

mIoU_occ averages, over occluded instances (non-empty ``amodal - visible``), the IoU of the
predicted mask's part outside the visible region with the occluded region:
``|(P - V) ∩ (A - V)| / |(P - V) ∪ (A - V)|``. With ``V ⊆ A`` (the canonical format clips the
visible mask to the amodal one) that is ``(|P∩A| - |P∩V|) / (|P| + |A| - |V| - |P∩A|)``, computed
exactly from RLE runs.

The per-category table (Table 1's layout) gives each category's mean instance IoU and their
unweighted mean over categories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from a3d_core.eval.coco import Grouping
from a3d_core.eval.rle_runs import RunTable, run_intersections


def best_matches(grouping: Grouping, pair_iou: torch.Tensor, num_gt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each ground truth's best-matching detection.

    Args:
        grouping: the COCO grouping; pair_iou: ``(num_pairs,)`` float64 in its pair layout.
        num_gt: number of ground-truth rows.

    Returns:
        ``(num_gt,)`` float64 best IoU (0 without any overlap) and ``(num_gt,)`` int64 detection
        row (-1 without any overlap); ties go to the higher-scoring detection.
    """
    device = pair_iou.device
    det, gt = grouping.pairs()
    best = torch.zeros(num_gt, dtype=torch.float64, device=device).scatter_reduce(
        0, gt, pair_iou, reduce="amax", include_self=True
    )
    is_best = (pair_iou == best[gt]) & (pair_iou > 0)
    pair_index = torch.arange(grouping.num_pairs, device=device)
    sentinel = grouping.num_pairs
    first = torch.full((num_gt,), sentinel, dtype=torch.int64, device=device).scatter_reduce(
        0, gt[is_best], pair_index[is_best], reduce="amin", include_self=True
    )
    chosen = torch.full((num_gt,), -1, dtype=torch.int64, device=device)
    has = first < sentinel
    chosen[has] = det[first[has]]
    return best, chosen


def occluded_region_iou(
    predictions: RunTable,
    amodal: RunTable,
    visible: RunTable,
    prediction_index: torch.Tensor,
    gt_index: torch.Tensor,
    pixels: int,
) -> torch.Tensor:
    """IoU on the occluded region, ``(N,)`` float64 (0 where the region or the union is empty).

    Args:
        predictions, amodal, visible: run tables of predicted masks and ground-truth masks.
        prediction_index: ``(N,)`` prediction per pair, ``-1`` for no prediction (empty mask).
        gt_index: ``(N,)`` ground truth per pair (indexes ``amodal`` and ``visible``).
        pixels: upper bound on the image size ``H * W``.
    """
    has = prediction_index >= 0
    safe = prediction_index.clamp(min=0)
    p_and_a = torch.zeros_like(gt_index)
    p_and_v = torch.zeros_like(gt_index)
    p_and_a[has] = run_intersections(predictions, amodal, safe[has], gt_index[has], pixels)
    p_and_v[has] = run_intersections(predictions, visible, safe[has], gt_index[has], pixels)
    p_area = torch.zeros_like(gt_index)
    p_area[has] = predictions.area[safe[has]]
    intersection = (p_and_a - p_and_v).to(torch.float64)
    union = (p_area + amodal.area[gt_index] - visible.area[gt_index] - p_and_a).to(torch.float64)
    positive = intersection > 0
    return torch.where(
        positive, intersection / torch.where(positive, union, torch.ones_like(union)), torch.zeros_like(union)
    )


@dataclass
class CategoryIoU:
    """One row of the per-category table: mean instance IoU and the number of instances."""

    name: str
    iou: float
    count: int


@dataclass
class SegmentMetrics:
    """mIoU and mIoU_occ with the per-category table.

    Attributes:
        miou: mean IoU over ground-truth instances (-1 when there are none).
        miou_occ: mean occluded-region IoU over occluded instances (-1 when none).
        num_instances, num_occluded: how many instances each mean is over.
        per_category: Table 1's rows (categories without instances are left out).
        category_mean: unweighted mean of the per-category IoUs (Table 1's "mean").
        instance_iou: ``(num_instances,)`` float64, for the IoU histogram.
    """

    miou: float
    miou_occ: float
    num_instances: int
    num_occluded: int
    per_category: list[CategoryIoU]
    category_mean: float
    instance_iou: torch.Tensor


def _mean(values: torch.Tensor) -> float:
    return float(values.mean()) if values.numel() else -1.0


def segment_metrics(
    instance_iou: torch.Tensor,
    category: torch.Tensor,
    occluded: torch.Tensor,
    occluded_iou: torch.Tensor,
    category_names: Sequence[str],
) -> SegmentMetrics:
    """Aggregate per-instance IoUs.

    Args:
        instance_iou: ``(N,)`` float64 amodal IoU per evaluated instance.
        category: ``(N,)`` int64 category index. occluded: ``(N,)`` bool.
        occluded_iou: ``(N,)`` float64, used where ``occluded``.
        category_names: name per category index.
    """
    rows = []
    for k, name in enumerate(category_names):
        chosen = instance_iou[category == k]
        if chosen.numel():
            rows.append(CategoryIoU(name=name, iou=float(chosen.mean()), count=int(chosen.numel())))
    return SegmentMetrics(
        miou=_mean(instance_iou),
        miou_occ=_mean(occluded_iou[occluded]),
        num_instances=int(instance_iou.numel()),
        num_occluded=int(occluded.sum()),
        per_category=rows,
        category_mean=sum(r.iou for r in rows) / len(rows) if rows else -1.0,
        instance_iou=instance_iou.cpu(),
    )
