"""COCO protocol rules on hand-made cases with hand-computed AP and matches."""

import pytest
import torch

from a3d_core.eval.coco import CocoParams, greedy_match
from a3d_core.eval.coco_inputs import evaluate_coco, load_detections, load_ground_truth


def box_dataset(gt_boxes, crowd=None, area=None):
    annotations = [
        {
            "id": i + 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": box,
            "area": (area or [box[2] * box[3] for box in gt_boxes])[i],
            "iscrowd": (crowd or [0] * len(gt_boxes))[i],
        }
        for i, box in enumerate(gt_boxes)
    ]
    return {
        "images": [{"id": 1, "height": 100, "width": 100}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "a"}],
    }


def run_boxes(dataset, detections):
    gt = load_ground_truth(dataset, with_masks=False)
    results = [{"image_id": 1, "category_id": 1, "bbox": box, "score": score} for box, score in detections]
    return evaluate_coco(gt, load_detections(results, gt, with_masks=False), "bbox")


def test_false_positive_ranked_first_halves_precision():
    # One object of 40x40 (medium). The best-scored detection misses, the second hits exactly:
    # precision at recall 1 is 1/2, so AP = 0.5 at every threshold; AR100 = 1, AR1 = 0. In the
    # medium range the miss (30x30 = 900 < 32^2, small) is ignored: APm = 1 (up to eps).
    result = run_boxes(box_dataset([[10, 10, 40, 40]]), [([60, 60, 30, 30], 0.9), ([10, 10, 40, 40], 0.8)])
    assert result.stats["AP"] == pytest.approx(0.5)
    assert result.stats["APm"] == pytest.approx(1.0)
    assert result.stats["APs"] == -1 and result.stats["APl"] == -1
    assert result.stats["AR1"] == 0.0 and result.stats["AR100"] == 1.0


def test_crowd_absorbs_many_detections_without_false_positives():
    # A crowd region plus one object; three detections inside the crowd are ignored (not false
    # positives), so the object's detection alone gives AP 1 even though it scores last.
    dataset = box_dataset([[0, 0, 50, 50], [60, 60, 20, 20]], crowd=[1, 0])
    detections = [([0, 0, 10, 10], 0.9), ([20, 20, 10, 10], 0.8), ([5, 30, 10, 10], 0.7), ([60, 60, 20, 20], 0.1)]
    result = run_boxes(dataset, detections)
    assert result.stats["AP"] == pytest.approx(1.0)
    assert result.matches.ignored[0, 0].tolist() == [True, True, True, False]


def test_equal_iou_goes_to_the_later_ground_truth_and_ties_in_score_keep_file_order():
    # Two identical objects; both detections are identical with equal scores. evaluateImg gives
    # the first detection (file order) the LATER ground truth on equal IoU.
    dataset = box_dataset([[10, 10, 20, 20], [10, 10, 20, 20]])
    result = run_boxes(dataset, [([10, 10, 20, 20], 0.5), ([10, 10, 20, 20], 0.5)])
    first, second = result.matches.matched_gt[0, 0].tolist()
    assert (first, second) == (1, 0)


def test_greedy_match_prefers_regular_over_ignored_ground_truth():
    # gt 0 ignored with IoU 0.9, gt 1 regular with IoU 0.6: the detection takes gt 1 at t = 0.5,
    # and falls back to the ignored gt 0 at t = 0.7 where gt 1 is out of reach.
    iou = torch.tensor([[[0.9, 0.6]]], dtype=torch.float64)
    ignored = torch.tensor([[[True, False]]])
    matches = greedy_match(iou, torch.tensor([[False, False]]), ignored, torch.tensor([0.5, 0.7], dtype=torch.float64))
    assert matches.flatten().tolist() == [1, 0]


def test_unmatched_detection_outside_the_area_range_is_ignored():
    # One large object (100x100 > 96^2) and one small false positive: in range "large" the
    # small false positive is ignored (APl 1); in range "all" it ranks first and halves precision
    # (AP 0.5) and takes the single slot of AR1.
    dataset = box_dataset([[0, 0, 100, 100]])
    result = run_boxes(dataset, [([0, 0, 100, 100], 0.5), ([0, 0, 3, 3], 0.9)])
    assert result.stats["APl"] == pytest.approx(1.0)
    assert result.stats["AP"] == pytest.approx(0.5)
    assert result.stats["AR1"] == 0.0 and result.stats["ARl"] == 1.0


def test_params_are_validated():
    with pytest.raises(ValueError, match="max_detections"):
        CocoParams(max_detections=(10, 1))
    with pytest.raises(ValueError, match="iou_thresholds"):
        CocoParams(iou_thresholds=(0.5, 1.5))
