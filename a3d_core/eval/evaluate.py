"""The pure function behind ``a3d evaluate``: COCO AP (amodal, visible, occluded) and mIoU.

Ground truth is a canonical amodal split (``a3d_core.data.canonical``): ``segmentation`` is the
amodal mask, ``visible_mask`` the visible one, ``occlusion_rate`` ``1 - visible/amodal``.
Predictions are a COCO results list, the one ``a3d predict`` writes: ``image_id``,
``category_id``, ``score``, ``segmentation`` (amodal RLE), optional ``visible_mask`` (RLE) and
``bbox``.

Kinds (paper 4.2; FORMATS.md, "How the field evaluates"):

- ``amodal``: COCO mask AP of predicted amodal masks against amodal ground truth, exactly as
  ``COCOeval(gt, dt, "segm")`` on the same files (detection areas follow ``loadRes``: box area
  when the first prediction has a ``bbox``, else mask area);
- ``visible``: the same with ``visible_mask`` on both sides (ground-truth areas from
  ``visible_area``; detection areas from the visible masks);
- ``occluded``: amodal AP over instances with ``occlusion_rate >= 0.15`` (ShapeDict); the other
  ground-truth instances are ignored like crowds without their crowd matching rule: a detection
  matched to one is ignored, an unmatched detection is a false positive.

mIoU and mIoU_occ (:mod:`a3d_core.eval.segments`) come with the amodal (or occluded) kind, and so
does the pairwise occlusion order accuracy (:mod:`a3d_core.eval.occlusion_order`) where the ground
truth has an order annotation and the predictions have visible masks (else ``skipped["order"]``
says why).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from a3d_core.data.canonical import AmodalSplit, read_dataset, read_json
from a3d_core.data.catalog import resolve_dataset
from a3d_core.errors import InputError
from a3d_core.eval.coco import CocoEvaluation, CocoParams
from a3d_core.eval.coco_inputs import (
    CocoDetections,
    CocoGroundTruth,
    evaluate_coco,
    load_detections,
    load_ground_truth,
    parse_named_runs,
)
from a3d_core.eval.masks import to_rle
from a3d_core.eval.occlusion_order import OrderAccuracy, order_accuracy
from a3d_core.eval.segments import SegmentMetrics, best_matches, occluded_region_iou, segment_metrics
from a3d_core.runtime import resolve_device

KINDS = ("amodal", "visible", "occluded")


@dataclass(frozen=True)
class EvaluationSettings:
    """What to evaluate.

    Attributes:
        kinds: any of ``amodal``, ``visible``, ``occluded``.
        occlusion_threshold: ground truth at or above this occlusion rate counts in occluded AP.
        require_visible: raise when predictions lack ``visible_mask`` (else visible is skipped).
        occlusion_order: with amodal or occluded, also score the pairwise occlusion order where the
            ground truth has an order annotation (a validation that reads AP alone leaves it out).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
    """

    kinds: tuple[str, ...] = KINDS
    occlusion_threshold: float = 0.15
    require_visible: bool = False
    occlusion_order: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if not self.kinds or unknown:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {self.kinds}")
        if not 0.0 <= self.occlusion_threshold <= 1.0:
            raise ValueError(f"occlusion_threshold must be within [0, 1], got {self.occlusion_threshold}")


@dataclass
class KindResult:
    """COCO results of one kind.

    Attributes:
        stats: the 12 stats by name. per_category: category name -> its 12 stats.
        precision: ``(T, R, K, A, M)`` float64 (CPU), for precision-recall curves.
        recall_thresholds: the ``R`` recall values of ``precision``'s second axis.
        iou_thresholds: the ``T`` IoU thresholds of its first axis.
    """

    stats: dict[str, float]
    per_category: dict[str, dict[str, float]]
    precision: torch.Tensor
    recall_thresholds: tuple[float, ...]
    iou_thresholds: tuple[float, ...]


@dataclass
class EvaluationResult:
    """Everything ``a3d evaluate`` reports."""

    dataset: str
    split: str
    num_images: int
    num_predictions: int
    category_names: list[str]
    kinds: dict[str, KindResult] = field(default_factory=dict)
    segments: SegmentMetrics | None = None
    order: OrderAccuracy | None = None
    skipped: dict[str, str] = field(default_factory=dict)


def load_predictions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a COCO results list (JSON array); anything else raises :class:`InputError`."""
    predictions = read_json(path)
    if not isinstance(predictions, list):
        raise InputError(
            f"{path}: expected a JSON list of predictions (COCO results), got {type(predictions).__name__}"
        )
    return predictions


def _kind_result(evaluation: CocoEvaluation, names: Sequence[str]) -> KindResult:
    return KindResult(
        stats=dict(evaluation.stats),
        per_category={names[k]: stats for k, stats in evaluation.per_category.items()},
        precision=evaluation.accumulated.precision.cpu(),
        recall_thresholds=evaluation.params.recall_thresholds,
        iou_thresholds=evaluation.params.iou_thresholds,
    )


def _segments(
    split: AmodalSplit,
    evaluation: CocoEvaluation,
    ground_truth: CocoGroundTruth,
    detections: CocoDetections,
    names: Sequence[str],
    device: torch.device,
) -> SegmentMetrics:
    """mIoU and mIoU_occ over the non-crowd ground truth, from the amodal evaluation's IoUs."""
    table = ground_truth.table
    best_iou, best_det = best_matches(evaluation.grouping, evaluation.pair_iou, len(table))
    keep = ~table.crowd.to(device)
    gt_rows = torch.nonzero(keep).flatten()
    known = set(ground_truth.category_ids)
    annotations = [a for a in split.annotations if int(a["category_id"]) in known]
    visible_rles = []
    for row, annotation in enumerate(annotations):
        image = int(table.image[row])
        try:
            visible_rles.append(
                to_rle(annotation["visible_mask"], ground_truth.heights[image], ground_truth.widths[image])
            )
        except (KeyError, ValueError) as error:
            raise InputError(
                f"ground truth annotation {annotation.get('id', row)}: bad 'visible_mask' ({error})"
            ) from None
    amodal = parse_named_runs(ground_truth.rles, range(len(ground_truth.rles)), ground_truth.describe).to(device)
    visible = parse_named_runs(
        visible_rles,
        range(len(visible_rles)),
        lambda row: f"ground truth annotation {annotations[row].get('id', row)}: bad 'visible_mask'",
    ).to(device)
    predicted = parse_named_runs(detections.rles, range(len(detections.rles)), detections.describe).to(device)
    pixels = max((h * w for h, w in zip(ground_truth.heights, ground_truth.widths)), default=0)
    occluded = (amodal.area - visible.area)[gt_rows] > 0
    occluded_iou = occluded_region_iou(predicted, amodal, visible, best_det[gt_rows], gt_rows, pixels)
    return segment_metrics(best_iou[gt_rows], table.category.to(device)[gt_rows], occluded, occluded_iou, names)


def evaluate_predictions(
    split: AmodalSplit,
    predictions: Sequence[Mapping[str, Any]],
    settings: EvaluationSettings | None = None,
    dataset_name: str = "dataset",
    split_name: str = "val",
    on_step: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Evaluate ``predictions`` against a canonical split (see the module notes)."""
    settings = settings or EvaluationSettings()
    device = resolve_device(settings.device)
    step = on_step or (lambda description: None)
    coco = split.to_coco()
    names = [str(c["name"]) for c in sorted(split.categories, key=lambda c: int(c["id"]))]
    result = EvaluationResult(dataset_name, split_name, len(split.images), len(predictions), names)
    params = CocoParams()

    if "amodal" in settings.kinds or "occluded" in settings.kinds:
        step("amodal masks")
        ground_truth = load_ground_truth(coco, source=f"{split_name} ground truth")
        detections = load_detections(predictions, ground_truth)
        evaluation = None
        if "amodal" in settings.kinds:
            step("amodal AP")
            evaluation = evaluate_coco(ground_truth, detections, "segm", params, device)
            result.kinds["amodal"] = _kind_result(evaluation, names)
        if "occluded" in settings.kinds:
            step("occluded AP")
            less_occluded = [
                float(a.get("occlusion_rate", 0.0)) < settings.occlusion_threshold for a in coco["annotations"]
            ]
            occluded_gt = load_ground_truth(coco, extra_ignore=less_occluded, source=f"{split_name} ground truth")
            occluded_eval = evaluate_coco(occluded_gt, detections, "segm", params, device)
            result.kinds["occluded"] = _kind_result(occluded_eval, names)
            evaluation = evaluation or occluded_eval
        step("mIoU")
        result.segments = _segments(split, evaluation, ground_truth, detections, names, device)
        if settings.occlusion_order:
            step("occlusion order")
            order = order_accuracy(split.images, split.annotations, predictions)
            if isinstance(order, OrderAccuracy):
                result.order = order
            else:
                result.skipped["order"] = order

    if "visible" in settings.kinds:
        missing = next(
            (i for i, p in enumerate(predictions) if isinstance(p, Mapping) and "visible_mask" not in p), None
        )
        if missing is not None and settings.require_visible:
            raise InputError(f"predictions entry {missing}: no 'visible_mask' (needed for --kind visible)")
        if missing is not None:
            result.skipped["visible"] = f"predictions have no 'visible_mask' (entry {missing})"
        else:
            step("visible AP")
            visible_results = [
                {
                    "image_id": p["image_id"],
                    "category_id": p["category_id"],
                    "score": p["score"],
                    "visible_mask": p["visible_mask"],
                }
                for p in predictions
            ]
            visible_gt = load_ground_truth(
                coco, mask_key="visible_mask", area_key="visible_area", source=f"{split_name} ground truth"
            )
            visible_dt = load_detections(visible_results, visible_gt, mask_key="visible_mask")
            result.kinds["visible"] = _kind_result(evaluate_coco(visible_gt, visible_dt, "segm", params, device), names)
    return result


def evaluate_dataset(
    dataset: str | os.PathLike,
    predictions_path: str | os.PathLike,
    split: str = "val",
    settings: EvaluationSettings | None = None,
    data_root: str | os.PathLike | None = None,
    on_step: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Evaluate a predictions file against split ``split`` of a dataset folder or name."""
    folder = read_dataset(resolve_dataset(dataset, data_root))
    step = on_step or (lambda description: None)
    step("reading")
    amodal_split = folder.load_split(split)
    predictions = load_predictions(predictions_path)
    return evaluate_predictions(amodal_split, predictions, settings, folder.name, split, on_step)
