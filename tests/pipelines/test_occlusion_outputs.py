"""Who occludes whom beside the predictions (occlusion.json) and in `a3d evaluate` (pairwise order accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.canonical import decode_segmentation, read_json
from a3d_core.eval.occlusion_order import occlusion_relation, relation_record
from a3d_core.io.atomic import atomic_write_json
from a3d_core.pipelines.complete import CompleteSettings, complete_images
from a3d_core.pipelines.predict import OCCLUSION_FILE, PredictSettings, write_image_outputs
from tests.model.tiny_scenes import HEIGHT, WIDTH, write_tiny_scenes

runner = CliRunner()


def test_write_image_outputs_writes_the_relation_in_score_order(tmp_path: Path) -> None:
    amodal = torch.zeros(3, 10, 12)
    amodal[0, 2:8, 2:8] = 1  # behind 1
    amodal[1, 4:10, 4:10] = 1
    amodal[2, 0:2, 0:2] = 1  # low score, not kept
    visible = amodal.clone()
    visible[0, 4:8, 4:8] = 0
    detections = {
        "scores": torch.tensor([0.9, 0.95, 0.1]),
        "labels": torch.tensor([1, 1, 1]),
        "amodal_masks": amodal,
        "visible_masks": visible,
    }
    image = np.zeros((10, 12, 3), np.uint8)
    settings = PredictSettings(masks=False, overlays=True)
    write_image_outputs(tmp_path / "image", image, detections, 2, settings, ["car"], image_id=7)
    record = json.loads((tmp_path / "image" / OCCLUSION_FILE).read_text())
    # instance 0 is the best-scoring detection (index 1), which hides 16 pixels of instance 1
    assert record == {
        "image_id": 7,
        "instances": 2,
        "pairs": [{"front": 0, "behind": 1, "confidence": 1.0, "pixels": 16}],
        "depth_order": [0, 1],
        "depth_rank": [0, 1],
    }
    assert (tmp_path / "image" / "panels.png").is_file()


def _with_depth_order(folder) -> None:
    """Tiny scenes draw the chair (category 9) in front of the car: annotate it as ``depth_order``."""
    path = folder.split_path("val")
    split = read_json(path)
    for annotation in split["annotations"]:
        annotation["depth_order"] = 0 if annotation["category_id"] == 9 else 1
    atomic_write_json(path, split)


def test_complete_writes_the_relation_of_its_completions(tmp_path: Path) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=1, val_images=2)
    records = folder.load_split("val")
    visible = tmp_path / "visible.json"
    visible.write_text(
        json.dumps(
            [
                {"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["visible_mask"]}
                for a in records.annotations
            ]
        )
    )
    out = tmp_path / "out"
    settings = CompleteSettings(
        completer="visible",
        categories=folder.root,
        images_index=folder.split_path("val"),
        device="cpu",
        masks=False,
        overlays=False,
    )
    complete_images(folder.root / "images", visible, out, settings)
    index = json.loads((out / "images.json").read_text())
    predictions = json.loads((out / "predictions.json").read_text())
    assert len(index["images"]) == 2
    for image in index["images"]:
        record = json.loads((out / image["folder"] / OCCLUSION_FILE).read_text())
        mine = [p for p in predictions if p["image_id"] == image["id"]]
        amodal = torch.from_numpy(np.stack([decode_segmentation(p["segmentation"], HEIGHT, WIDTH) for p in mine]))
        seen = torch.from_numpy(np.stack([decode_segmentation(p["visible_mask"], HEIGHT, WIDTH) for p in mine]))
        assert record == {"image_id": image["id"], **relation_record(occlusion_relation(amodal, seen))}
        assert record["instances"] == 2 and record["pairs"] == []  # the visible-mask baseline hides nothing


def test_evaluate_reports_pairwise_order_accuracy(tmp_path: Path) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=1, val_images=3)
    oracle = [{"score": 1.0, **a} for a in folder.load_split("val").annotations]
    (tmp_path / "oracle.json").write_text(json.dumps(oracle))
    arguments = ["evaluate", "--dataset", str(folder.root), "--device", "cpu", "--json", str(tmp_path / "r.json")]

    without = runner.invoke(app, [*arguments, "--predictions", str(tmp_path / "oracle.json")])
    assert without.exit_code == 0, without.output
    assert "skipped order" in without.output and "no occlusion order" in without.output

    _with_depth_order(folder)
    result = runner.invoke(app, [*arguments, "--predictions", str(tmp_path / "oracle.json")])
    assert result.exit_code == 0, result.output
    assert "Pairwise occlusion order against depth_order" in result.output
    order = json.loads((tmp_path / "r.json").read_text())["order"]
    assert order == {
        "accuracy": 1.0,
        "accuracy_all_pairs": 1.0,
        "source": "depth_order",
        "pairs": 3,
        "matched": 3,
        "correct": 3,
        "unordered": 0,
    }

    baseline = runner.invoke(app, [*arguments, "--protocol", "completion", "--completer", "visible"])
    assert baseline.exit_code == 0, baseline.output
    order = json.loads((tmp_path / "r.json").read_text())["order"]
    # no hidden part, so no relation: every matched pair is unordered (a car whose visible part is
    # under half its amodal mask matches nothing at IoU 0.5, and its pair is left out)
    assert order["pairs"] == 3 and 0 < order["matched"] == order["unordered"] and order["accuracy"] == 0.0
