"""COCO evaluation on CUDA gives the CPU's floats (mask IoU from runs, matching, accumulation)."""

import pytest
import torch

from a3d_core.eval.coco_inputs import evaluate_coco, load_detections, load_ground_truth
from a3d_core.eval.evaluate import EvaluationSettings, evaluate_predictions
from a3d_core.eval.synthetic import SyntheticCocoSettings, synthetic_coco
from tests.eval.amodal_fixture import prediction, rectangle, tiny_split

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_cuda_evaluation_equals_cpu(iou_type):
    settings = SyntheticCocoSettings(
        images=8, categories=3, crowd_rate=0.2, detections_per_image=(30, 130), with_boxes=True, ragged=True
    )
    ground_truth, results = synthetic_coco(settings, seed=11)
    gt = load_ground_truth(ground_truth, with_masks=iou_type == "segm")
    dt = load_detections(results, gt, with_masks=iou_type == "segm")
    on_cpu = evaluate_coco(gt, dt, iou_type)
    on_cuda = evaluate_coco(gt, dt, iou_type, device="cuda")
    assert on_cuda.accumulated.precision.is_cuda
    assert torch.equal(on_cuda.pair_iou.cpu(), on_cpu.pair_iou)
    assert torch.equal(on_cuda.accumulated.precision.cpu(), on_cpu.accumulated.precision)
    assert torch.equal(on_cuda.accumulated.recall.cpu(), on_cpu.accumulated.recall)
    assert on_cuda.stats == pytest.approx(on_cpu.stats, abs=1e-12)
    assert on_cpu.stats["AP"] > 0


def test_cuda_miou_equals_cpu():
    predictions = [
        prediction(1, 1, 0.9, rectangle(2, 2, 6, 6), rectangle(2, 2, 6, 4)),
        prediction(1, 2, 0.8, rectangle(6, 10, 9, 12), rectangle(6, 10, 9, 12)),
        prediction(2, 1, 0.3, rectangle(0, 0, 4, 2), rectangle(0, 0, 4, 2)),
    ]
    on_cpu = evaluate_predictions(tiny_split(), predictions, EvaluationSettings(device="cpu"))
    on_cuda = evaluate_predictions(tiny_split(), predictions, EvaluationSettings(device="cuda"))
    assert on_cuda.segments.miou == pytest.approx(on_cpu.segments.miou, abs=1e-12)
    assert on_cuda.segments.miou_occ == pytest.approx(on_cpu.segments.miou_occ, abs=1e-12)
    for kind, result in on_cpu.kinds.items():
        assert on_cuda.kinds[kind].stats == pytest.approx(result.stats, abs=1e-12)
