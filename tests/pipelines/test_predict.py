"""a3d predict: odd image files, a corrupt one, COCO results, the default checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.canonical import decode_segmentation
from a3d_core.pipelines.predict import detections_to_results
from tests.model.tiny_scenes import write_tiny_scenes, write_two_stage_checkpoint


def _odd_images(folder: Path) -> dict[str, tuple[int, int]]:
    """Write images of awkward kinds; returns file name -> the (height, width) a viewer shows."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 255, (30, 30, 4), dtype=np.uint8), mode="RGBA").save(folder / "rgba.png")
    Image.fromarray(rng.integers(0, 255, (36, 44), dtype=np.uint8), mode="L").save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 65535, (32, 48), dtype=np.uint16)).save(folder / "deep16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display: a 60 x 40 file shows as 40 x 60
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / "rotated.jpg", exif=exif)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 10)
    return {"rgb": (40, 50), "rgba": (30, 30), "gray": (36, 44), "deep16": (32, 48), "rotated": (60, 40)}


def test_predict_odd_images_and_a_corrupt_file(tmp_path: Path) -> None:
    expected = _odd_images(tmp_path / "images")
    checkpoint = write_two_stage_checkpoint(tmp_path / "model.pt", ["car", "chair"])
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(tmp_path / "images"),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path / "out"),
            "--score-threshold",
            "0",
            "--batch-size",
            "2",
            "--meshes",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 1  # some failed
    assert "corrupt.png" in result.output

    index = json.loads((tmp_path / "out" / "images.json").read_text())
    assert [Path(entry["file_name"]).name for entry in index["failed"]] == ["corrupt.png"]
    shown = {Path(entry["file_name"]).stem: (entry["height"], entry["width"]) for entry in index["images"]}
    assert shown == expected
    assert index["categories"] == [{"id": 1, "name": "car"}, {"id": 2, "name": "chair"}]
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    ids = {entry["id"]: entry for entry in index["images"]}
    for entry in ids.values():
        overlay = np.asarray(Image.open(tmp_path / "out" / entry["folder"] / "overlay.png"))
        assert overlay.shape == (entry["height"], entry["width"], 3)
        # input | visible | amodal
        assert Image.open(tmp_path / "out" / entry["folder"] / "panels.png").size[0] == 3 * 192 + 2 * 4
    assert predictions, "an untrained network still scores above 0"
    for prediction in predictions:
        image = ids[prediction["image_id"]]
        amodal = decode_segmentation(prediction["segmentation"], image["height"], image["width"])
        mask_file = tmp_path / "out" / image["folder"] / "instance_00_amodal.png"
        assert mask_file.is_file() and (tmp_path / "out" / image["folder"] / "instance_00.obj").is_file()
        assert amodal.shape == (image["height"], image["width"]) and prediction["category_id"] in (1, 2)
    first = ids[predictions[0]["image_id"]]
    best = max((p for p in predictions if p["image_id"] == first["id"]), key=lambda p: p["score"])
    written = np.asarray(Image.open(tmp_path / "out" / first["folder"] / "instance_00_amodal.png")) > 0
    assert np.array_equal(written, decode_segmentation(best["segmentation"], first["height"], first["width"]) > 0)


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


def test_predict_a_dataset_split_with_its_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_scenes(tmp_path / "data", train_images=1, val_images=2)
    (tmp_path / "runs" / "scenes").mkdir(parents=True)
    write_two_stage_checkpoint(tmp_path / "runs" / "scenes" / "last.pt", ["car", "chair"])
    monkeypatch.setenv("A3D_RUNS_ROOT", str(tmp_path / "runs"))
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--dataset",
            str(tmp_path / "data"),
            "--split",
            "val",
            "--out",
            str(tmp_path / "out"),
            "--score-threshold",
            "0",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "the newest fine-tuned run under" in result.output
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert {p["image_id"] for p in predictions} <= {2, 3} and {p["category_id"] for p in predictions} <= {4, 9}
