"""Exact agreement with pycocotools COCOeval: the cocoapi sample files and generated stress cases."""

import contextlib
import copy
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from a3d_core.eval.coco_inputs import evaluate_coco, load_detections, load_ground_truth
from a3d_core.eval.synthetic import SyntheticCocoSettings, synthetic_coco
from tests.shared_data import COCOAPI

# The cocoapi sample (real COCO ground truth with fake results), as shipped with pycocotools' repo.


def cocoeval(ground_truth: dict, results: list, iou_type: str) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(ground_truth)
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


def ours(ground_truth: dict, results: list, iou_type: str):
    masks = iou_type == "segm"
    gt = load_ground_truth(ground_truth, with_masks=masks)
    return evaluate_coco(gt, load_detections(results, gt, with_masks=masks), iou_type)


def assert_same(ground_truth: dict, results: list, iou_type: str) -> None:
    reference = cocoeval(ground_truth, results, iou_type)
    result = ours(ground_truth, results, iou_type)
    np.testing.assert_allclose(np.array(list(result.stats.values())), reference.stats, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(result.accumulated.precision.numpy(), reference.eval["precision"])
    np.testing.assert_array_equal(result.accumulated.recall.numpy(), reference.eval["recall"])


@pytest.mark.skipif(not COCOAPI.is_dir(), reason="cocoapi sample data not present")
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_cocoapi_sample_matches_cocoeval(iou_type):
    ground_truth = json.loads((COCOAPI / "instances_val2014_100.json").read_text())
    results = json.loads((COCOAPI / f"instances_val2014_fake{iou_type}100_results.json").read_text())
    assert_same(ground_truth, results, iou_type)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("with_boxes", [False, True])
def test_stress_cases_match_cocoeval(seed, with_boxes):
    settings = SyntheticCocoSettings(
        images=5,
        categories=2,
        crowd_rate=0.3,
        detections_per_image=(210, 260),
        with_boxes=with_boxes,
        score_levels=(3, 0, 5)[seed],
        ragged=seed == 1,
    )
    ground_truth, results = synthetic_coco(settings, seed)
    per_group = np.unique([(r["image_id"], r["category_id"]) for r in results], axis=0, return_counts=True)[1]
    assert per_group.max() > 100  # the cap of 100 detections per image and category is exercised
    assert any(a["iscrowd"] for a in ground_truth["annotations"])
    assert_same(ground_truth, results, "segm")
    if with_boxes:
        assert_same(ground_truth, results, "bbox")


def test_images_without_ground_truth_or_detections_and_unused_categories():
    settings = SyntheticCocoSettings(
        images=10, categories=5, empty_gt_rate=0.5, empty_det_rate=0.5, detections_per_image=(1, 8)
    )
    ground_truth, results = synthetic_coco(settings, seed=7)
    ground_truth["categories"].append({"id": 99, "name": "never annotated"})
    assert_same(ground_truth, results, "segm")
