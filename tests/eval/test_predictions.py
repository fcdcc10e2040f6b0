"""Predictions -> COCO results: order, category ids, boxes and masks of the two-stage network's detections."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from a3d_core.data.canonical import decode_segmentation
from a3d_core.eval.predictions import detections_to_results


def test_detections_to_results_by_hand() -> None:
    amodal = torch.zeros(2, 6, 8)
    amodal[0, 1:4, 2:6] = 0.9
    amodal[1, 0:2, 0:2] = 0.7
    visible = torch.zeros(2, 6, 8)
    visible[0, 1:4, 2:4] = 0.8
    detections = {
        "boxes": torch.tensor([[2.0, 1.0, 6.0, 4.0], [0.0, 0.0, 2.0, 2.0]]),
        "labels": torch.tensor([2, 1]),
        "scores": torch.tensor([0.3, 0.8]),
        "amodal_masks": amodal,
        "visible_masks": visible,
    }
    results = detections_to_results(detections, image_id=7, category_id_of_label=[11, 22], score_threshold=0.2)
    assert [r["score"] for r in results] == [pytest.approx(0.8), pytest.approx(0.3)]  # best first
    assert [r["category_id"] for r in results] == [11, 22]
    assert results[1]["bbox"] == [2.0, 1.0, 4.0, 3.0] and results[1]["image_id"] == 7
    assert np.array_equal(
        decode_segmentation(results[1]["segmentation"], 6, 8), (amodal[0] > 0.5).numpy().astype(np.uint8)
    )
    assert decode_segmentation(results[1]["visible_mask"], 6, 8).sum() == 6
    assert len(detections_to_results(detections, 7, [11, 22], score_threshold=0.5)) == 1
