"""The JSON report of ``a3d evaluate``, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from a3d_core import __version__
from a3d_core.eval.evaluate import EvaluationResult
from a3d_core.io.atomic import atomic_write_json


def report_dict(result: EvaluationResult, predictions: str | None = None) -> dict[str, Any]:
    """A JSON-ready summary: the 12 COCO stats and per-category stats per kind, mIoU, mIoU_occ,
    the per-category IoU table (paper Table 1's layout) and the pairwise occlusion order accuracy.
    Stats are fractions in [0, 1] (-1 where undefined, as in pycocotools)."""
    report: dict[str, Any] = {
        "a3d_version": __version__,
        "dataset": result.dataset,
        "split": result.split,
        "predictions": predictions,
        "num_images": result.num_images,
        "num_predictions": result.num_predictions,
        "coco": {
            kind: {"stats": kind_result.stats, "per_category": kind_result.per_category}
            for kind, kind_result in result.kinds.items()
        },
        "skipped": dict(result.skipped),
    }
    if result.segments is not None:
        segments = result.segments
        report["miou"] = {
            "miou": segments.miou,
            "miou_occ": segments.miou_occ,
            "num_instances": segments.num_instances,
            "num_occluded": segments.num_occluded,
            "matching": "best amodal IoU among same-image, same-category predictions (ties: higher score)",
            "per_category": {row.name: {"iou": row.iou, "count": row.count} for row in segments.per_category},
            "category_mean": segments.category_mean,
        }
    if result.order is not None:
        order = result.order
        report["order"] = {
            "accuracy": order.accuracy,
            "accuracy_all_pairs": order.accuracy_all_pairs,
            "source": order.source,
            "pairs": order.pairs,
            "matched": order.matched,
            "correct": order.correct,
            "unordered": order.unordered,
        }
    return report


def write_report(result: EvaluationResult, path: str | os.PathLike, predictions: str | None = None) -> Path:
    """Write :func:`report_dict` as indented JSON through a temporary file."""
    return atomic_write_json(path, report_dict(result, predictions), indent=2)
