"""a3d predict: odd image files, a corrupt one, COCO results, the default checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.canonical import decode_segmentation
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
        occlusion = json.loads((tmp_path / "out" / entry["folder"] / "occlusion.json").read_text())
        assert occlusion["image_id"] == entry["id"] and occlusion["instances"] == entry["instances"]
        assert sorted(occlusion["depth_order"]) == list(range(entry["instances"]))
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
