"""a3d complete: visible masks of any segmenter -> amodal masks that `a3d evaluate` scores; classes without a
prior and SAM's class-agnostic masks; bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.canonical import decode_segmentation, encode_mask, read_dataset
from a3d_core.data.detection import AmodalDetectionDataset
from a3d_core.io.images import read_image
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

    refused = runner.invoke(
        app, [*args, "--out", str(tmp_path / "refused"), "--no-category-map", "--unknown-category", "refuse"]
    )
    assert refused.exit_code == 1 and "no shape decoder for categories ['van', 'couch']" in refused.output
    assert not (tmp_path / "refused").exists()
    mapped = _write(tmp_path / "map.json", {"van": "sofa", "couch": "sofa"})
    again = runner.invoke(
        app, [*args, "--out", str(tmp_path / "again"), "--no-category-map", "--category-map", str(mapped)]
    )
    assert again.exit_code == 0 and "sofa <- van" in again.output


def _flat(output: str) -> str:
    """The output with the terminal's line wrapping undone."""
    return " ".join(output.split())


def _write_checkpoint_predicting_chair(path: Path) -> Path:
    """A car/chair pretraining checkpoint whose classification branch predicts ``chair`` for any input."""
    write_pretrain_checkpoint(path, ["car", "chair"])
    saved = torch.load(path)
    saved["model"]["classifier.linear.bias"] = torch.tensor([-50.0, 50.0])
    torch.save(saved, path)
    return path


def _as_kins(folder) -> list[dict]:
    """The val split's instances named as KINS names them: the first car stays, the rest are classes without a prior."""
    entries = _ground_truth_as_results(folder)
    names = ["car", "cyclist", "pedestrian", "cyclist"]
    return [{**{k: v for k, v in e.items() if k != "category_id"}, "category_name": n} for e, n in zip(entries, names)]


def _complete(tmp_path: Path, folder, checkpoint: Path, entries: list[dict], out: str, *options: str):
    visible = _write(tmp_path / f"{out}.json", entries)
    arguments = ["complete", str(folder.root / "images"), "--visible", str(visible), "--checkpoint", str(checkpoint)]
    return runner.invoke(app, [*arguments, "--out", str(tmp_path / out), "--device", "cpu", *options])


def test_classes_without_a_prior_are_completed_by_the_predicted_class(tmp_path: Path) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=2)
    checkpoint = _write_checkpoint_predicting_chair(tmp_path / "pretrain.pt")
    entries = _as_kins(folder)
    result = _complete(tmp_path, folder, checkpoint, entries, "out")
    assert result.exit_code == 0, result.output
    assert (
        "completed 4 instances: 1 by their category's prior, 0 mapped, 3 by the predicted class "
        "(cyclist: chair 2; pedestrian: chair 1); 0 as visible masks" in _flat(result.output)
    )
    assert "predicted: chair 2" in result.output  # the summary table's decoder column
    index = json.loads((tmp_path / "out" / "images.json").read_text())
    assert index["handling"]["own_prior"] == 1 and index["handling"]["predicted_class"] == 3
    assert [c["name"] for c in index["categories"]] == ["car", "cyclist", "pedestrian"]

    # what ran: the car through its own decoder, the others through the chair decoder the classifier chose
    completer = load_checkpoint_completer(checkpoint, device="cpu")
    images = {image["id"]: image for image in index["images"]}
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    for entry, decoder in zip(entries, ["car", "chair", "chair", "chair"]):
        image_id = next(i for i, image in images.items() if image["file_name"].endswith(entry["file_name"]))
        visible = decode_segmentation(entry["segmentation"], HEIGHT, WIDTH)
        got = next(
            p
            for p in predictions
            if p["image_id"] == image_id
            and np.array_equal(decode_segmentation(p["visible_mask"], HEIGHT, WIDTH), visible)
        )
        image = torch.from_numpy(read_image(Path(images[image_id]["file_name"]))).permute(2, 0, 1).float() / 255.0
        x, y, w, h = entry["bbox"]
        expected = completer.complete(
            [image], [torch.tensor([[x, y, x + w, y + h]])], [torch.from_numpy(visible)[None].float()], [[decoder]]
        )[0]
        assert expected["shape_labels"].tolist() == [completer.decoder_names.index(decoder) + 1]
        amodal = decode_segmentation(got["segmentation"], HEIGHT, WIDTH)
        assert np.array_equal(amodal, (expected["amodal_masks"][0] > 0.5).numpy().astype(np.uint8))


def test_classes_without_a_prior_keep_their_visible_masks_or_are_refused_when_asked(tmp_path: Path) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=2)
    checkpoint = _write_checkpoint_predicting_chair(tmp_path / "pretrain.pt")
    entries = _as_kins(folder)
    kept = _complete(tmp_path, folder, checkpoint, entries, "kept", "--unknown-category", "visible")
    assert kept.exit_code == 0, kept.output
    assert "1 by their category's prior, 0 mapped, 0 by the predicted class; 3 as visible masks" in _flat(kept.output)
    predictions = json.loads((tmp_path / "kept" / "predictions.json").read_text())
    names = {c["id"]: c["name"] for c in json.loads((tmp_path / "kept" / "images.json").read_text())["categories"]}
    unknown = [p for p in predictions if names[p["category_id"]] != "car"]
    assert len(unknown) == 3 and all(p["segmentation"] == p["visible_mask"] for p in unknown)
    car = next(p for p in predictions if names[p["category_id"]] == "car")
    assert car["segmentation"] != car["visible_mask"]  # the car (partly hidden by the chair) was completed

    meshes = _complete(tmp_path, folder, checkpoint, entries, "meshes", "--unknown-category", "visible", "--meshes")
    assert meshes.exit_code == 1 and "leave out --meshes" in _flat(meshes.output) and not (tmp_path / "meshes").exists()

    refused = _complete(tmp_path, folder, checkpoint, entries, "refused", "--unknown-category", "refuse")
    assert refused.exit_code == 1, refused.output
    assert "no shape decoder for categories ['cyclist', 'pedestrian'] (it has car, chair)" in _flat(refused.output)
    assert len([line for line in refused.output.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "refused").exists()


def _sam_entries(folder) -> list[dict]:
    """The first val image's visible masks as SAM's automatic mask generator writes them: no image, no category."""
    entries = [e for e in _ground_truth_as_results(folder) if e["file_name"] == "val_001.png"]
    sam = []
    for k, entry in enumerate(entries):
        mask = decode_segmentation(entry["segmentation"], HEIGHT, WIDTH)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        sam.append(
            {
                "segmentation": entry["segmentation"],
                "area": int(mask.sum()),
                "bbox": [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)],
                "predicted_iou": 0.9 - 0.1 * k,
                "point_coords": [[float(cols[0]), float(rows[0])]],
                "stability_score": 0.95,
                "crop_box": [0, 0, WIDTH, HEIGHT],
            }
        )
    ys, xs = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    polygon = [float(xs[0]), float(ys[0]), float(xs[-1]), float(ys[0]), float(xs[-1]), float(ys[-1])]
    sam[-1]["segmentation"] = [polygon]  # SAM-style entries with polygons work too
    return sam


def test_sam_masks_of_one_image_complete_with_no_extra_file(tmp_path: Path) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=2)
    checkpoint = _write_checkpoint_predicting_chair(tmp_path / "pretrain.pt")
    image = folder.root / "images" / "val_001.png"
    visible = _write(tmp_path / "sam.json", _sam_entries(folder))
    arguments = ["complete", str(image), "--visible", str(visible), "--checkpoint", str(checkpoint), "--device", "cpu"]
    result = runner.invoke(app, [*arguments, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (
        "completed 2 instances: 0 by their category's prior, 0 mapped, 2 by the predicted class (object: chair 2)"
        in _flat(result.output)
    )
    index = json.loads((tmp_path / "out" / "images.json").read_text())
    assert index["categories"] == [{"id": 1, "name": "object"}] and len(index["images"]) == 1
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert sorted(p["score"] for p in predictions) == pytest.approx([0.8, 0.9])  # predicted_iou as the score
    assert all(p["category_id"] == 1 for p in predictions)

    several = runner.invoke(
        app,
        [
            *arguments[:1],
            str(folder.root / "images"),
            *arguments[2:],
            "--out",
            str(tmp_path / "several"),
        ],
    )
    assert several.exit_code == 1
    assert "entry 0: no 'image_id' or 'file_name', which only a single image allows (2 images given)" in _flat(
        several.output
    )


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
