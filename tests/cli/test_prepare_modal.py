"""a3d prepare modal on the real COCO fixture (839 instance masks, 100 images, no images at hand), then
a3d pretrain on it with tiny counts: a class-agnostic U-Net and A3D train unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from a3d_cli.main import app
from tests.shared_data import COCOAPI

FIXTURE = COCOAPI / "instances_val2014_100.json"
pytestmark = pytest.mark.skipif(not FIXTURE.is_file(), reason="cocoapi sample data not present")
runner = CliRunner()


@pytest.fixture(scope="module")
def modal_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("modal") / "coco"
    arguments = ["prepare", "modal", "--annotations", str(FIXTURE), "--class-agnostic", "--image-size", "24"]
    result = runner.invoke(app, [*arguments, "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "train" in result.output and "test" in result.output
    return out


def test_the_fixture_is_split_by_image_with_crowds_and_tiny_masks_skipped(modal_dataset: Path) -> None:
    manifest = json.loads((modal_dataset / "dataset.json").read_text())
    assert manifest["categories"] == ["object"] and manifest["splits"] == ["train", "val", "test"]
    objects = manifest["objects"]
    splits_of_image: dict[int, set[str]] = {}
    for entry in objects:
        splits_of_image.setdefault(entry["image_id"], set()).add(entry["split"])
    assert all(len(splits) == 1 for splits in splits_of_image.values())
    per_split = {s: sum(1 for splits in splits_of_image.values() if s in splits) for s in manifest["splits"]}
    assert per_split["test"] >= 15 and per_split["val"] >= 5
    assert 700 < len(objects) <= 830  # the 9 crowd regions are never instances


def _prepare_small(out: Path, *options: str) -> Path:
    arguments = ["prepare", "modal", "--annotations", str(FIXTURE), "--image-size", "24", "--max-images", "12"]
    result = runner.invoke(app, [*arguments, *options, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_same_seed_gives_the_same_pairs(tmp_path: Path) -> None:
    first = _prepare_small(tmp_path / "first", "--class-agnostic")
    again = _prepare_small(tmp_path / "again", "--class-agnostic")
    other = _prepare_small(tmp_path / "other", "--class-agnostic", "--seed", "1")
    shard = Path("shards") / "train-00000.npz"
    assert (first / shard).read_bytes() == (again / shard).read_bytes() != (other / shard).read_bytes()
    assert len(json.loads((first / "dataset.json").read_text())["categories"]) == 1
    existing = runner.invoke(app, ["prepare", "modal", "--annotations", str(FIXTURE), "--out", str(first)])
    assert existing.exit_code == 1 and "already exists" in existing.output


@pytest.mark.parametrize("model", ["2d-unet", "a3d"])
def test_any_completer_pretrains_on_it(tmp_path: Path, model: str) -> None:
    dataset = _prepare_small(tmp_path / "data", "--class-agnostic")
    arguments = ["pretrain", "--dataset", str(dataset), "--out", str(tmp_path / model), "--model", model]
    arguments += ["--steps", "2", "--batch-size", "4", "--val-instances", "4", "--device", "cpu", "--flip"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / model / "results.json").read_text())
    assert results["category_names"] == ["object"] and results["steps"] == 2
    assert results["evaluations"]["test"]["instances"] >= 5


def _first_images(out: Path, count: int) -> Path:
    """The fixture cut to its first ``count`` images that have instances (a quick instance file)."""
    coco = json.loads(FIXTURE.read_text())
    kept = sorted({a["image_id"] for a in coco["annotations"]})[:count]
    coco["images"] = [i for i in coco["images"] if i["id"] in kept]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in kept]
    out.write_text(json.dumps(coco))
    return out


def test_pretrain_on_an_instance_file_prepares_class_agnostic_pairs_once(tmp_path: Path) -> None:
    annotations = _first_images(tmp_path / "instances.json", 10)
    run = tmp_path / "run"
    arguments = ["pretrain", "--dataset", str(annotations), "--out", str(run), "--model", "2d-unet"]
    arguments += ["--batch-size", "4", "--val-instances", "4", "--device", "cpu"]
    first = runner.invoke(app, [*arguments, "--steps", "1"])
    assert first.exit_code == 0, first.output
    manifest_path = run / "modal-pairs" / "dataset.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["categories"] == ["object"]
    assert manifest["prepared_with"]["annotations"] == str(annotations.resolve())
    objects = {entry["image_id"] for entry in manifest["objects"]}
    assert objects <= {i["id"] for i in json.loads(annotations.read_text())["images"]}
    results = json.loads((run / "results.json").read_text())
    assert results["category_names"] == ["object"] and results["evaluations"]["test"]["instances"] >= 1
    written = manifest_path.stat().st_mtime_ns
    resumed = runner.invoke(app, [*arguments, "--steps", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert manifest_path.stat().st_mtime_ns == written
    assert json.loads((run / "results.json").read_text())["steps"] == 2
