"""a3d finetune, predict and evaluate on a real-layout dataset (KINS) prepared by `a3d prepare`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from a3d_cli.main import app
from tests.data.formats_fixtures import KINS_CATEGORIES, KINS_H, KINS_W, kins_files
from tests.model.tiny_scenes import write_pretrain_checkpoint

runner = CliRunner()


def test_finetune_predict_and_evaluate_a_prepared_kins_dataset(tmp_path: Path) -> None:
    annotation_file, images = kins_files(tmp_path / "src")
    root = ["--data-root", str(tmp_path / "root")]
    for split in ("train", "val"):
        prepared = runner.invoke(
            app, ["prepare", "kins", "-a", str(annotation_file), "-i", str(images), "--split", split, *root]
        )
        assert prepared.exit_code == 0, prepared.output

    run = tmp_path / "run"
    init = write_pretrain_checkpoint(tmp_path / "pretrain.pt", ["airplane", "car", "sofa"])
    trained = runner.invoke(
        app,
        [
            "finetune",
            "--dataset",
            "kins",
            *root,
            "--out",
            str(run),
            "--init",
            str(init),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--val-every",
            "2",
            "--min-size",
            "48",
            "--max-size",
            "160",
            "--device",
            "cpu",
        ],
    )
    assert trained.exit_code == 0, trained.output
    results = json.loads((run / "results.json").read_text())
    names = [category["name"] for category in KINS_CATEGORIES]
    assert results["category_names"] == names
    # the shipped category map: KINS' vehicles reuse the pretrained car, without a hand-written map
    assert results["transferred"] == {"car": "car", "truck": "car", "van": "car"}
    assert results["fresh"] == ["cyclist", "pedestrian", "tram", "misc"]
    assert "car <- van" in trained.output and "car <- truck" in trained.output
    assert results["steps"] == 2 and results["validation"][-1]["step"] == 2

    predicted = runner.invoke(
        app,
        [
            "predict",
            "--dataset",
            "kins",
            "--split",
            "val",
            *root,
            "--checkpoint",
            str(run / "last.pt"),
            "--out",
            str(tmp_path / "preds"),
            "--score-threshold",
            "0",
        ],
    )
    assert predicted.exit_code == 0, predicted.output
    index = json.loads((tmp_path / "preds" / "images.json").read_text())
    assert sorted(image["id"] for image in index["images"]) == [1, 2]  # the dataset's own image ids
    assert all((image["width"], image["height"]) == (KINS_W, KINS_H) for image in index["images"])
    assert index["categories"] == [{"id": c["id"], "name": c["name"]} for c in KINS_CATEGORIES]  # and its category ids
    predictions = json.loads((tmp_path / "preds" / "predictions.json").read_text())
    assert all(
        entry["image_id"] in (1, 2) and entry["category_id"] in {c["id"] for c in KINS_CATEGORIES}
        for entry in predictions
    )

    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            "--dataset",
            "kins",
            "--split",
            "val",
            *root,
            "--predictions",
            str(tmp_path / "preds" / "predictions.json"),
            "--json",
            str(tmp_path / "report.json"),
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert -1.0 <= report["coco"]["amodal"]["stats"]["AP"] <= 1.0
