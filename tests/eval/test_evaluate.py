"""`a3d evaluate` and its pure function on a tiny canonical dataset with hand-computed results."""

import json
import re

import imageio.v3 as iio
import pytest
import torch
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.errors import InputError
from a3d_core.eval.coco import Grouping
from a3d_core.eval.evaluate import EvaluationSettings, evaluate_dataset, evaluate_predictions
from a3d_core.eval.segments import best_matches
from tests.eval.amodal_fixture import prediction, rectangle, tiny_split, write_tiny_dataset

runner = CliRunner()

# AP at 10 thresholds when one of two instances is found at IoU 1 and the other at IoU 0.5 only:
# 1 at t = 0.5, then recall 1/2 with precision 1, i.e. 51 of the 101 recall points.
HALF_FOUND_AP = (1 + 9 * 51 / 101) / 10


def predictions():
    """Car 1 exact; chair IoU 6/9; car 2 IoU 8/16 and none of its occluded column."""
    return [
        prediction(1, 1, 0.9, rectangle(2, 2, 6, 6), rectangle(2, 2, 6, 4)),
        prediction(1, 2, 0.8, rectangle(6, 10, 9, 12), rectangle(6, 10, 9, 12)),
        prediction(2, 1, 0.3, rectangle(0, 0, 4, 2), rectangle(0, 0, 4, 2)),
    ]


def test_amodal_occluded_and_visible_by_hand():
    result = evaluate_predictions(tiny_split(), predictions())
    car_ap = HALF_FOUND_AP
    chair_ap = 4 / 10  # IoU 2/3 clears thresholds 0.50 .. 0.65
    assert result.kinds["amodal"].per_category["car"]["AP"] == pytest.approx(car_ap)
    assert result.kinds["amodal"].per_category["chair"]["AP"] == pytest.approx(chair_ap)
    assert result.kinds["amodal"].stats["AP"] == pytest.approx((car_ap + chair_ap) / 2)
    # Occluded AP: the chair (occlusion 0) is ignored, so its category has no ground truth.
    assert result.kinds["occluded"].per_category["chair"]["AP"] == -1
    assert result.kinds["occluded"].stats["AP"] == pytest.approx(car_ap)
    # Visible: car 1 exact (8 px), car 2 predicted 8 of 12 visible pixels (IoU 2/3), chair 6/9.
    assert result.kinds["visible"].per_category["car"]["AP"] == pytest.approx((4 + 6 * 51 / 101) / 10)
    segments = result.segments
    assert segments.miou == pytest.approx((1 + 6 / 9 + 8 / 16) / 3)
    assert segments.num_occluded == 2 and segments.miou_occ == pytest.approx((1 + 0) / 2)
    assert [(row.name, row.count) for row in segments.per_category] == [("car", 2), ("chair", 1)]
    assert segments.category_mean == pytest.approx(((1 + 0.5) / 2 + 6 / 9) / 2)


def test_the_occlusion_order_is_scored_only_when_asked():
    scored = evaluate_predictions(tiny_split(), predictions(), EvaluationSettings(kinds=("amodal",)))
    assert scored.order is not None or "order" in scored.skipped  # scored, or said why not
    left_out = evaluate_predictions(
        tiny_split(), predictions(), EvaluationSettings(kinds=("amodal",), occlusion_order=False)
    )
    assert left_out.order is None and "order" not in left_out.skipped
    assert left_out.kinds["amodal"].stats == scored.kinds["amodal"].stats


def test_best_match_takes_highest_iou_then_higher_score():
    # One ground truth, three detections in score order with IoU 0.4, 0.7, 0.7: the second wins.
    grouping = Grouping(
        image=torch.tensor([0]), category=torch.tensor([0]),
        gt_rows=torch.tensor([0]), gt_start=torch.tensor([0]), gt_count=torch.tensor([1]),
        det_rows=torch.tensor([5, 3, 4]), det_start=torch.tensor([0]), det_count=torch.tensor([3]),
        det_rank=torch.tensor([0, 1, 2]), pair_start=torch.tensor([0]), num_pairs=3,
    )  # fmt: skip
    best, chosen = best_matches(grouping, torch.tensor([0.4, 0.7, 0.7], dtype=torch.float64), num_gt=2)
    assert best.tolist() == [0.7, 0.0] and chosen.tolist() == [3, -1]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p[1].update(image_id=7), "entry 1: image_id 7 is not in the dataset"),
        (lambda p: p[2].update(category_id=9), "entry 2: category_id 9 is not in the dataset"),
        (lambda p: p[0].update(score=float("nan")), "entry 0 score: nan is not finite"),
        (lambda p: p[1]["segmentation"].update(size=[5, 5]), "entry 1: bad 'segmentation' (mask size [5, 5] differs"),
        (lambda p: p[0].update(bbox=[2, 2, 4, 4]), "entry 1: no 'bbox' (the first entry has one, so all must)"),
        (lambda p: p[2].pop("score"), "entry 2: missing 'score'"),
    ],
)
def test_bad_predictions_name_the_entry(change, message):
    bad = predictions()
    change(bad)
    with pytest.raises(InputError, match=re.escape(message)):
        evaluate_predictions(tiny_split(), bad)


def test_visible_kind_needs_visible_masks():
    amodal_only = [{k: v for k, v in p.items() if k != "visible_mask"} for p in predictions()]
    with pytest.raises(InputError, match="entry 0: no 'visible_mask'"):
        evaluate_predictions(tiny_split(), amodal_only, EvaluationSettings(kinds=("visible",), require_visible=True))
    result = evaluate_predictions(tiny_split(), amodal_only)
    assert "visible" in result.skipped and "visible" not in result.kinds


def test_cli_writes_report_and_plots(tmp_path):
    dataset = write_tiny_dataset(tmp_path)
    predictions_file = tmp_path / "predictions.json"
    predictions_file.write_text(json.dumps(predictions()))
    report = tmp_path / "out" / "report.json"
    plots = tmp_path / "plots"
    outcome = runner.invoke(
        app,
        [
            "evaluate",
            "--dataset",
            str(dataset),
            "--predictions",
            str(predictions_file),
            "--json",
            str(report),
            "--plots",
            str(plots),
            "--device",
            "cpu",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    assert "mIoU" in outcome.output
    written = json.loads(report.read_text())
    assert written["coco"]["amodal"]["stats"]["AP"] == pytest.approx((HALF_FOUND_AP + 0.4) / 2)
    assert written["miou"]["miou"] == pytest.approx((1 + 6 / 9 + 0.5) / 3)
    assert sorted(p.name for p in plots.iterdir()) == [
        "iou_histogram.png",
        "pr_amodal.png",
        "pr_occluded.png",
        "pr_visible.png",
    ]
    assert iio.imread(plots / "pr_amodal.png").shape == (360, 480, 3)
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_cli_errors_are_one_line(tmp_path):
    dataset = write_tiny_dataset(tmp_path)
    bad = predictions()
    bad[2]["score"] = float("nan")
    predictions_file = tmp_path / "predictions.json"
    predictions_file.write_text(json.dumps(bad))
    outcome = runner.invoke(app, ["evaluate", "--dataset", str(dataset), "--predictions", str(predictions_file)])
    assert outcome.exit_code == 1
    assert "entry 2 score" in outcome.output and "Traceback" not in outcome.output
    checkpoint = runner.invoke(app, ["evaluate", "--dataset", str(dataset), "--checkpoint", str(tmp_path / "model.pt")])
    assert checkpoint.exit_code == 1 and "model.pt: checkpoint not found" in checkpoint.output
    both = runner.invoke(
        app, ["evaluate", "--dataset", str(dataset), "--checkpoint", "model.pt", "--predictions", str(predictions_file)]
    )
    assert both.exit_code == 1 and "give either --predictions" in both.output


def test_evaluate_dataset_reads_a_prepared_folder_by_path(tmp_path):
    dataset = write_tiny_dataset(tmp_path)
    predictions_file = tmp_path / "p.json"
    predictions_file.write_text(json.dumps(predictions()))
    result = evaluate_dataset(dataset, predictions_file, "val", EvaluationSettings(kinds=("amodal",)))
    assert result.dataset == "tiny" and result.num_predictions == 3 and list(result.kinds) == ["amodal"]
    with pytest.raises(InputError, match="no split 'test'"):
        evaluate_dataset(dataset, predictions_file, "test")
    assert result.kinds["amodal"].stats == evaluate_predictions(tiny_split(), predictions()).kinds["amodal"].stats


def test_no_predictions_scores_zero_and_mIoU_zero():
    result = evaluate_predictions(tiny_split(), [])
    assert result.kinds["amodal"].stats["AP"] == 0.0 and result.kinds["amodal"].stats["AR100"] == 0.0
    assert result.segments.miou == 0.0 and result.segments.miou_occ == 0.0
    assert "visible" not in result.skipped  # an empty list lacks no visible mask


def test_split_without_annotations_has_undefined_stats():
    split = tiny_split()
    split.annotations = []
    result = evaluate_predictions(split, predictions())
    assert set(result.kinds["amodal"].stats.values()) == {-1.0}
    assert result.segments.miou == -1.0 and result.segments.num_instances == 0
