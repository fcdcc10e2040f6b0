"""a3d complete: visible masks of any segmenter -> amodal masks that `a3d evaluate` scores; bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.canonical import decode_segmentation, encode_mask, read_dataset
from a3d_core.data.detection import AmodalDetectionDataset
from a3d_core.pipelines.completers import load_checkpoint_completer
from a3d_core.pipelines.evaluate import complete_ground_truth
from tests.model.tiny_scenes import (
    HEIGHT,
    WIDTH,
    write_pretrain_checkpoint,
    write_tiny_scenes,
    write_two_stage_checkpoint,
)

runner = CliRunner()


def _ground_truth_as_results(folder, split: str = "val") -> list[dict]:
    """The split's instances as a segmenter's output: file_name, category_id, VISIBLE mask, amodal bbox."""
    records = folder.load_split(split)
    names = {int(image["id"]): image["file_name"] for image in records.images}
    return [
        {
            "file_name": names[int(a["image_id"])],
            "category_id": a["category_id"],
            "score": 0.9,
            "segmentation": a["visible_mask"],
            "bbox": a["bbox"],
        }
        for a in records.annotations
    ]


def _write(path: Path, content) -> Path:
    path.write_text(json.dumps(content))
    return path


def test_completes_ground_truth_visible_masks_as_the_completion_protocol_does(tmp_path: Path) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=1, val_images=2)
    checkpoint = write_pretrain_checkpoint(tmp_path / "pretrain.pt", ["car", "chair"], input_framing=1.2)
    visible = _write(tmp_path / "visible.json", _ground_truth_as_results(folder))
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "complete",
            str(folder.root / "images"),
            "--visible",
            str(visible),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--categories",
            str(folder.root),
            "--images-index",
            str(folder.split_path("val")),
            "--meshes",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "4 instances in 2 images" in result.output

    predictions = json.loads((out / "predictions.json").read_text())
    truth = folder.load_split("val")
    assert len(predictions) == 4 and {p["image_id"] for p in predictions} == {int(i["id"]) for i in truth.images}
    for prediction in predictions:
        amodal = decode_segmentation(prediction["segmentation"], HEIGHT, WIDTH)
        visible_mask = decode_segmentation(prediction["visible_mask"], HEIGHT, WIDTH)
        assert np.all(amodal >= visible_mask)  # the visible part is kept
        rows, cols = np.flatnonzero(amodal.any(1)), np.flatnonzero(amodal.any(0))
        # the completed mask's box
        assert prediction["bbox"] == [cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1]
    index = json.loads((out / "images.json").read_text())
    assert sorted(c["name"] for c in index["categories"]) == ["car", "chair"]
    folders = [image["folder"] for image in index["images"]]
    assert all(
        (out / name / "overlay.png").is_file() and (out / name / "instance_01.obj").is_file() for name in folders
    )

    # the same instances through the completion protocol's machinery give the same masks
    completer = load_checkpoint_completer(checkpoint, device="cpu")
    protocol = complete_ground_truth(completer, AmodalDetectionDataset(folder, "val"))

    def key(entry):
        return entry["image_id"], entry["category_id"]

    assert [p["segmentation"] for p in sorted(protocol, key=key)] == [
        p["segmentation"] for p in sorted(predictions, key=key)
    ]

    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            "--dataset",
            str(folder.root),
            "--predictions",
            str(out / "predictions.json"),
            "--json",
            str(tmp_path / "report.json"),
            "--device",
            "cpu",
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["miou"]["num_instances"] == 4 and 0.0 < report["miou"]["miou"] <= 1.0


def test_category_names_reach_a_fine_tuned_checkpoint_through_the_shipped_map(tmp_path: Path) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=1, val_images=1)
    checkpoint = write_two_stage_checkpoint(tmp_path / "model.pt", ["sofa", "car"])
    entries = _ground_truth_as_results(folder)
    renamed = {4: "van", 9: "couch"}  # KINS' van -> car, COCO's couch -> sofa
    entries = [
        {
            **{k: v for k, v in e.items() if k not in ("category_id", "file_name")},
            "image_id": 0,
            "category_name": renamed[e["category_id"]],
        }
        for e in entries
    ]
    visible = _write(tmp_path / "visible.json", entries)
    args = [
        "complete",
        str(folder.root / "images" / "val_002.png"),
        "--visible",
        str(visible),
        "--checkpoint",
        str(checkpoint),
        "--device",
        "cpu",
    ]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "sofa <- couch" in result.output and "car <- van" in result.output
    index = json.loads((tmp_path / "out" / "images.json").read_text())
    assert {c["name"] for c in index["categories"]} == {"van", "couch"}

    refused = runner.invoke(app, [*args, "--out", str(tmp_path / "refused"), "--no-category-map"])
    assert refused.exit_code == 1 and "no shape decoder for categories ['van', 'couch']" in refused.output
    assert not (tmp_path / "refused").exists()
    mapped = _write(tmp_path / "map.json", {"van": "sofa", "couch": "sofa"})
    again = runner.invoke(
        app, [*args, "--out", str(tmp_path / "again"), "--no-category-map", "--category-map", str(mapped)]
    )
    assert again.exit_code == 0 and "sofa <- van" in again.output


def _corrupt(entries: list[dict], case: str) -> tuple[list[dict], str]:
    entries = [dict(e) for e in entries]
    bad = entries[1]
    if case == "image":
        bad["file_name"] = "missing.png"
        return entries, "entry 1: file_name 'missing.png' matches none"
    if case == "image_id":
        del bad["file_name"]
        bad["image_id"] = 99
        return entries, "entry 1: image_id 99 is not among the images given"
    if case == "category":
        bad["category_id"] = 7
        return entries, r"entry 1: unknown category_id 7 \(known: \[4, 9\]\)"
    if case == "size":
        bad["segmentation"] = encode_mask(np.ones((HEIGHT, WIDTH + 1), np.uint8))
        return entries, "entry 1: bad 'segmentation' for the 64x48 image"
    if case == "empty":
        bad["segmentation"] = encode_mask(np.zeros((HEIGHT, WIDTH), np.uint8))
        return entries, "entry 1: the visible mask is empty"
    bad["bbox"] = [1, 2, 0, 5]
    return entries, r"entry 1: 'bbox' must be \[x, y, w, h\] with w, h > 0"


@pytest.mark.parametrize("case", ["image", "image_id", "category", "size", "empty", "bbox"])
def test_bad_entries_are_named_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=1)
    checkpoint = write_pretrain_checkpoint(tmp_path / "pretrain.pt", ["car", "chair"])
    entries, message = _corrupt(_ground_truth_as_results(folder), case)
    visible = _write(
        tmp_path / "visible.json", {"annotations": entries, "categories": folder.load_split("val").categories}
    )
    result = runner.invoke(
        app,
        [
            "complete",
            str(folder.root / "images"),
            "--visible",
            str(visible),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "visible.json" in lines[0], result.output
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "out").exists()


def test_category_ids_need_names(tmp_path: Path) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=1)
    checkpoint = write_pretrain_checkpoint(tmp_path / "pretrain.pt", ["car", "chair"])
    visible = _write(tmp_path / "visible.json", _ground_truth_as_results(folder))
    result = runner.invoke(
        app,
        [
            "complete",
            str(folder.root / "images"),
            "--visible",
            str(visible),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 1 and "entry 0: category_id" in result.output and "--categories" in result.output
    assert read_dataset(folder.root).splits == ["train", "val"]


def test_without_a_checkpoint_the_newest_fine_tuned_run_completes(tmp_path: Path, monkeypatch) -> None:
    import os

    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=1)
    run = Path(os.environ["A3D_RUNS_ROOT"]) / "scenes"
    run.mkdir(parents=True)
    checkpoint = write_two_stage_checkpoint(run / "best.pt", ["car", "chair"])
    visible = _write(tmp_path / "visible.json", _ground_truth_as_results(folder))
    result = runner.invoke(
        app,
        [
            "complete",
            str(folder.root / "images"),
            "--visible",
            str(visible),
            "--out",
            str(tmp_path / "out"),
            "--categories",
            str(folder.root),
            "--images-index",
            str(folder.split_path("val")),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"checkpoint: {checkpoint}, the newest fine-tuned run under" in result.output
    assert (tmp_path / "out" / "predictions.json").is_file()
