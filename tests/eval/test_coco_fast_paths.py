"""The evaluator's fast paths against their plain counterparts: greedy matching in rounds against
evaluateImg's loop, chunked against whole, pycocotools block IoU against run intersections, and
the column-wise reading of results against the entry-by-entry one."""

import numpy as np
import pytest
import torch

from a3d_core.eval.coco import CocoParams, accumulate, greedy_match, group_instances, match_all
from a3d_core.eval.coco_inputs import MaskPairIoU, evaluate_coco, load_detections, load_ground_truth
from a3d_core.eval.synthetic import SyntheticCocoSettings, synthetic_coco


def evaluate_img_loop(iou, crowd, ignored, threshold):
    """``COCOeval.evaluateImg``'s matching loop for one group, area range and threshold."""
    order = np.argsort(ignored, kind="mergesort")  # regular ground truth first, stable
    taken = np.zeros(len(order), bool)
    matches = []
    for d in range(iou.shape[0]):
        best, match = min(threshold, 1 - 1e-10), -1
        for g in order:
            if taken[g] and not crowd[g]:
                continue
            if match > -1 and not ignored[match] and ignored[g]:
                break
            if iou[d, g] < best:
                continue
            best, match = iou[d, g], g
        if match > -1:
            taken[match] = True
        matches.append(int(match))
    return matches


@pytest.mark.parametrize("seed", range(4))
def test_rounds_equal_the_evaluate_img_loop(seed):
    # IoUs from a few levels make ties; crowds and ignored ground truth in every group.
    rng = np.random.default_rng(seed)
    groups, num_det, num_gt = 6, 9, 5
    iou = rng.choice([0.0, 0.3, 0.5, 0.55, 0.7, 0.9, 1.0], size=(groups, num_det, num_gt))
    crowd = rng.random((groups, num_gt)) < 0.2
    ignored = crowd[:, None, :] | (rng.random((groups, 2, num_gt)) < 0.3)
    thresholds = [0.5, 0.7, 0.95]
    matches = greedy_match(
        torch.from_numpy(iou),
        torch.from_numpy(crowd),
        torch.from_numpy(ignored),
        torch.tensor(thresholds, dtype=torch.float64),
    )
    for n in range(groups):
        for a in range(2):
            for t, threshold in enumerate(thresholds):
                assert matches[n, a, t].tolist() == evaluate_img_loop(iou[n], crowd[n], ignored[n, a], threshold)


def stress_case(seed, with_boxes=False):
    settings = SyntheticCocoSettings(
        images=6, categories=3, crowd_rate=0.3, detections_per_image=(20, 130), ragged=True, with_boxes=with_boxes
    )
    return synthetic_coco(settings, seed)


def test_small_budgets_give_the_same_matches_and_arrays():
    ground_truth, results = stress_case(3)
    gt = load_ground_truth(ground_truth)
    dt = load_detections(results, gt)
    params = CocoParams()
    evaluation = evaluate_coco(gt, dt)
    grouping, ious = evaluation.grouping, evaluation.pair_iou
    num_categories = len(gt.category_ids)
    matches = match_all(grouping, gt.table, dt.table, ious, params, budget=50)
    assert torch.equal(matches.matched_gt, evaluation.matches.matched_gt)
    assert torch.equal(matches.ignored, evaluation.matches.ignored)
    accumulated = accumulate(grouping, gt.table, dt.table, matches, num_categories, params, budget=100)
    assert torch.equal(accumulated.precision, evaluation.accumulated.precision)
    assert torch.equal(accumulated.recall, evaluation.accumulated.recall)
    assert (evaluation.accumulated.precision > 0).any()


def test_block_iou_equals_run_intersections():
    ground_truth, results = stress_case(4)
    gt = load_ground_truth(ground_truth)
    dt = load_detections(results, gt)
    grouping = group_instances(gt.table, dt.table, len(gt.category_ids), 100)
    by_block = MaskPairIoU(dt.rles, gt.rles, gt.table.crowd)(grouping)
    by_runs = MaskPairIoU(dt.rles, gt.rles, gt.table.crowd, runs=True, pairs_per_batch=50)(grouping)
    assert by_block.shape == (grouping.num_pairs,) and (by_block > 0).sum() > 50
    assert torch.equal(by_block, by_runs)


@pytest.mark.parametrize("with_boxes", [False, True])
def test_plain_and_checked_reading_agree(with_boxes):
    ground_truth, results = stress_case(5, with_boxes)
    gt = load_ground_truth(ground_truth)
    plain = load_detections(results, gt)
    # A numpy score is not plain JSON: the whole list goes through the checked reading.
    unusual = [dict(r) for r in results]
    unusual[-1]["score"] = np.float64(unusual[-1]["score"])
    checked = load_detections(unusual, gt)
    for name, value in vars(plain.table).items():
        assert torch.equal(value, getattr(checked.table, name)), name
    assert torch.equal(plain.boxes, checked.boxes)
    assert [r["counts"] for r in plain.rles] == [r["counts"] for r in checked.rles]
