"""The design card's commands, as written, one after another in an empty folder: each finds what
the previous one wrote (data root ./data, runs root ./runs) and says what it chose."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.canonical import read_dataset
from a3d_core.data.shapenet import read_shard_manifest
from a3d_core.train.run_folders import FINE_TUNED, PRETRAINING, read_run
from tests.data.formats_fixtures import rect, rle_string, write_json

runner = CliRunner()
H, W = 48, 64
CATEGORIES = [{"id": 3, "name": "car"}, {"id": 5, "name": "chair"}]  # named as two pretraining categories
TINY_SHAPENET = ["--objects-per-category", "2", "--views", "2", "--image-size", "16"]
TINY_PRETRAIN = [
    "--steps",
    "2",
    "--batch-size",
    "4",
    "--template-level",
    "0",
    "--azimuth-hypotheses",
    "1",
    "--val-instances",
    "4",
]
TINY_FINETUNE = ["--steps", "2", "--batch-size", "2", "--min-size", "48", "--max-size", "64", "--val-images", "2"]


def d2sa_layout_file(root: Path, images: int) -> tuple[Path, Path]:
    """A D2SA-layout annotation file and its images: per image a car partly hidden behind a chair
    (amodal masks as RLE, the car's visible part, D2SA's occlude_rate)."""
    folder = root / "images"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    entries, annotations = [], []
    for image_id in range(1, images + 1):
        shift = 4 * image_id
        car, chair = rect(H, W, 6 + shift, 10, 36 + shift, 34), rect(H, W, 26 + shift, 4, 50 + shift, 44)
        pixels = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
        pixels[car > 0] = (200, 40, 40)
        pixels[chair > 0] = (40, 40, 200)
        Image.fromarray(pixels).save(folder / f"D2S_{image_id:06d}.png")
        entries.append({"id": image_id, "file_name": f"D2S_{image_id:06d}.png", "width": W, "height": H})
        visible_car = car * (1 - chair)
        annotations += [
            {
                "id": 2 * image_id - 1,
                "image_id": image_id,
                "category_id": 3,
                "segmentation": rle_string(car),
                "bbox": [6 + shift, 10, 30, 24],
                "visible_mask": rle_string(visible_car),
                "occlude_rate": float(1 - visible_car.sum() / car.sum()),
                "iscrowd": 0,
            },
            {
                "id": 2 * image_id,
                "image_id": image_id,
                "category_id": 5,
                "segmentation": rle_string(chair),
                "bbox": [26 + shift, 4, 24, 40],
                "iscrowd": 0,
            },
        ]
    annotation_file = write_json(
        root / "D2S_amodal.json", {"images": entries, "annotations": annotations, "categories": CATEGORIES}
    )
    return annotation_file, folder


def run(arguments: list[str]) -> str:
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # rich wraps long lines


def test_the_card_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("A3D_DATA_ROOT", raising=False)
    monkeypatch.delenv("A3D_RUNS_ROOT", raising=False)
    annotations, images = d2sa_layout_file(tmp_path / "download", images=3)
    Image.open(images / "D2S_000001.png").save("image.jpg")

    run(["prepare", "shapenet", *TINY_SHAPENET])
    assert set(read_shard_manifest(tmp_path / "data" / "shapenet")["shards"]) == {"train", "val", "test"}

    said = run(["pretrain", *TINY_PRETRAIN])
    assert "data: data/shapenet (the default" in said and "run folder: runs/pretrain (the default" in said
    pretrained = read_run("runs/pretrain/best.pt")
    assert pretrained.kind == PRETRAINING and pretrained.dataset == Path("data/shapenet")

    for split in ("train", "val"):
        run(["prepare", "d2sa", "-a", str(annotations), "-i", str(images), "--split", split])
    assert read_dataset(tmp_path / "data" / "d2sa").splits == ["train", "val"]

    said = run(["finetune", "--dataset", "d2sa", *TINY_FINETUNE])
    assert "run folder: runs/d2sa (the default" in said
    assert (
        "stage 2 starts from runs/pretrain/best.pt, the newest pretraining run under runs" in said
        and "--no-init" in said
    )
    results = json.loads(Path("runs/d2sa/results.json").read_text())
    assert results["init"] == "runs/pretrain/best.pt" and results["transferred"] == {"car": "car", "chair": "chair"}
    fine_tuned = read_run("runs/d2sa/best.pt")
    assert fine_tuned.kind == FINE_TUNED and fine_tuned.dataset.name == "d2sa"

    said = run(["predict", "image.jpg", "--out", "masks/"])
    assert "checkpoint: runs/d2sa/best.pt, the newest fine-tuned run under runs" in said
    index = json.loads(Path("masks/images.json").read_text())
    assert [(Path(entry["file_name"]).name, entry["width"], entry["height"]) for entry in index["images"]] == [
        ("image.jpg", W, H)
    ]
    assert [category["name"] for category in index["categories"]] == ["car", "chair"]
    assert isinstance(json.loads(Path("masks/predictions.json").read_text()), list)
    assert np.asarray(Image.open(Path("masks") / index["images"][0]["folder"] / "overlay.png")).shape == (H, W, 3)

    said = run(["evaluate", "--dataset", "d2sa"])
    assert "checkpoint: runs/d2sa/best.pt, the newest fine-tuned run for d2sa under runs" in said
    assert "COCO mask AP/AR on d2sa/val" in said and "mIoU" in said
    # nothing else was written there
    assert sorted(path.name for path in Path("runs").iterdir()) == ["d2sa", "pretrain"]
