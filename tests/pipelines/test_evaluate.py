"""a3d evaluate --protocol completion: ground-truth visible masks completed, scored (mIoU, mIoU_occ, AP)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.canonical import decode_segmentation
from a3d_core.errors import InputError
from a3d_core.pipelines.completers import VisibleCompleter
from a3d_core.pipelines.evaluate import EvaluateRequest, evaluate, evaluate_completion
from tests.model.tiny_scenes import (
    HEIGHT,
    WIDTH,
    write_pretrain_checkpoint,
    write_tiny_scenes,
    write_two_stage_checkpoint,
)

runner = CliRunner()


def test_the_visible_baseline_scores_visible_over_amodal_area(tmp_path: Path) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=3)
    result = evaluate_completion(folder.root, VisibleCompleter(), "val")
    annotations = folder.load_split("val").annotations
    ious = [
        decode_segmentation(a["visible_mask"], HEIGHT, WIDTH).sum()
        / decode_segmentation(a["segmentation"], HEIGHT, WIDTH).sum()
        for a in annotations
    ]
    assert result.segments.num_instances == 6 and result.segments.miou == pytest.approx(float(np.mean(ious)), abs=1e-6)
    # nothing of the hidden part is predicted
    assert result.segments.num_occluded == 3 and result.segments.miou_occ == 0.0
    # unoccluded: the visible mask is exact
    assert result.kinds["amodal"].per_category["chair"]["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["pretrain", "finetune"])
def test_the_protocol_runs_any_checkpoint_from_the_command_line(tmp_path: Path, kind: str) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=2)
    if kind == "pretrain":
        checkpoint = write_pretrain_checkpoint(tmp_path / "model.pt", ["car", "chair", "sofa"])
    else:
        checkpoint = write_two_stage_checkpoint(tmp_path / "model.pt", ["car", "chair"])
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--dataset",
            str(folder.root),
            "--protocol",
            "completion",
            "--checkpoint",
            str(checkpoint),
            "--predictions-out",
            str(tmp_path / "completed"),
            "--json",
            str(tmp_path / "report.json"),
            "--masks",
            "amodal",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "mIoU_occ" in result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert (
        report["miou"]["num_instances"] == 4
        and report["predictions"] == "checkpoint completer (" + str(checkpoint) + ")"
    )
    completed = json.loads((tmp_path / "completed" / "predictions.json").read_text())
    assert len(completed) == 4 and all(entry["score"] == 1.0 for entry in completed)
    rescored = runner.invoke(
        app,
        [
            "evaluate",
            "--dataset",
            str(folder.root),
            "--predictions",
            str(tmp_path / "completed" / "predictions.json"),
            "--json",
            str(tmp_path / "again.json"),
            "--kind",  # the old name of --masks still works
            "amodal",
            "--device",
            "cpu",
        ],
    )
    assert rescored.exit_code == 0, rescored.output
    assert json.loads((tmp_path / "again.json").read_text())["miou"] == report["miou"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--completer", "checkpoint"], "the checkpoint completer needs --checkpoint FILE"),
        (["--predictions", "p.json"], "leave out --predictions"),
        (
            ["--checkpoint", "{airplane}", "--no-category-map", "--unknown-category", "refuse"],
            "no shape decoder for categories ['car', 'chair']",
        ),
    ],
)
def test_bad_protocol_options_fail_on_one_line(tmp_path: Path, arguments: list[str], message: str) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=1)
    airplane = write_pretrain_checkpoint(tmp_path / "airplane.pt", ["airplane"])
    arguments = [str(airplane) if a == "{airplane}" else a for a in arguments]
    result = runner.invoke(
        app, ["evaluate", "--dataset", str(folder.root), "--protocol", "completion", *arguments, "--device", "cpu"]
    )
    assert result.exit_code == 1 and message in result.output.replace("\n", " ")
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output


@pytest.mark.parametrize(
    "arguments, option",
    [
        (["--protocol", "oracle"], "--protocol"),
        (["--protocol", "completion", "--completer", "dictionary"], "--completer"),
        (["--masks", "hidden"], "--masks"),
        (["--masks", "amodal", "--kind", "visible"], "--masks"),
    ],
)
def test_choices_outside_the_lists_are_usage_errors(tmp_path: Path, arguments: list[str], option: str) -> None:
    """Choices come from the code's tuples: --help lists them, and Typer refuses others before anything runs."""
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=1)
    result = runner.invoke(app, ["evaluate", "--dataset", str(folder.root), *arguments])
    assert result.exit_code == 2 and option in result.output and "Traceback" not in result.output
    listed = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200"}).output
    assert "detection|completion" in listed and "checkpoint|visible|shapedict" in listed
    assert "amodal|visible|occluded|all" in listed and "--kind" not in listed


def test_the_core_function_scores_each_mode_as_the_command_does(tmp_path: Path) -> None:
    """evaluate() dispatches a predictions file and a completer; options that do not go together are InputErrors."""
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=2)
    completed = evaluate(
        EvaluateRequest(
            folder.root, protocol="completion", completer="visible", predictions_out=tmp_path / "kept", masks="amodal"
        )
    )
    assert completed.source == "visible completer" and list(completed.evaluation.kinds) == ["amodal"]
    assert completed.handling.visible_mask == 4 and completed.handling.instances == 4
    assert completed.evaluation.segments.miou_occ == 0.0
    rescored = evaluate(EvaluateRequest(folder.root, predictions=tmp_path / "kept" / "predictions.json"))
    assert rescored.source == str(tmp_path / "kept" / "predictions.json")
    assert rescored.evaluation.segments.miou == completed.evaluation.segments.miou
    assert set(rescored.evaluation.kinds) == {"amodal", "visible", "occluded"}
    with pytest.raises(InputError, match="not both"):
        evaluate(EvaluateRequest(folder.root, predictions=tmp_path / "p.json", checkpoint=tmp_path / "m.pt"))
    with pytest.raises(InputError, match="no fine-tuned run for data under .*or --predictions FILE"):
        evaluate(EvaluateRequest(folder.root, runs_root=tmp_path / "runs"))
    with pytest.raises(ValueError, match="masks must be one of"):
        EvaluateRequest(folder.root, masks="hidden")


def test_categories_without_a_decoder_are_completed_by_the_predicted_class(tmp_path: Path) -> None:
    """The scenes' car and chair reach an airplane-only checkpoint through its classification branch, or
    keep their visible masks (then the hidden parts score nothing, as the visible baseline's)."""
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=2)
    airplane = write_pretrain_checkpoint(tmp_path / "airplane.pt", ["airplane"])
    arguments = ["evaluate", "--dataset", str(folder.root), "--protocol", "completion", "--checkpoint", str(airplane)]
    predicted = runner.invoke(app, [*arguments, "--device", "cpu"])
    assert predicted.exit_code == 0, predicted.output
    assert (
        "completed 4 instances: 0 by their category's prior, 0 mapped, 4 by the predicted class "
        "(car: airplane 2; chair: airplane 2); 0 as visible masks" in " ".join(predicted.output.split())
    )
    kept = evaluate(
        EvaluateRequest(
            folder.root, protocol="completion", checkpoint=airplane, unknown_category="visible", device="cpu"
        )
    )
    assert kept.handling.visible_mask == 4 and kept.evaluation.segments.miou_occ == 0.0


def test_the_visible_baseline_from_the_command_line_needs_no_checkpoint(tmp_path: Path) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=2)
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--dataset",
            str(folder.root),
            "--protocol",
            "completion",
            "--completer",
            "visible",
            "--json",
            str(tmp_path / "report.json"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["miou"]["miou_occ"] == 0.0 and report["miou"]["num_occluded"] == 2
    assert report["coco"]["visible"]["stats"]["AP"] == pytest.approx(1.0)  # the visible masks are the ground truth's


def test_the_shapedict_baseline_learns_from_the_train_split_and_completes_hidden_parts(tmp_path: Path) -> None:
    """Tiny scenes repeat their shapes, so a dictionary of the training masks completes the val ones
    better than the visible masks do; an empty train split is a one-line error."""
    from a3d_core.pipelines.completers import fit_shapedict_completer

    folder = write_tiny_scenes(tmp_path / "data", train_images=4, val_images=3)
    completer = fit_shapedict_completer(folder.root, "train", device="cpu")
    assert completer.name.startswith("ShapeDict of") and completer.stage2.needs_fitting
    completed = evaluate_completion(folder.root, completer, "val")
    visible = evaluate_completion(folder.root, VisibleCompleter(), "val")
    assert completed.segments.miou_occ > visible.segments.miou_occ == 0.0
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--dataset",
            str(folder.root),
            "--protocol",
            "completion",
            "--completer",
            "shapedict",
            "--masks",
            "amodal",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    empty = write_tiny_scenes(tmp_path / "only-val", train_images=0, val_images=1)
    result = runner.invoke(
        app, ["evaluate", "--dataset", str(empty.root), "--protocol", "completion", "--completer", "shapedict"]
    )
    assert (
        result.exit_code == 1
        and "no annotations to build a shape dictionary" in result.output
        and "Traceback" not in result.output
    )
