"""Every command on bad input, through the real CLI: exit 1, one error line naming the file or entry, no traceback.

Each case builds its inputs in a temporary folder and names the text the error line must hold;
afterwards the folder holds exactly what it held before the command (nothing written or changed).
Standard output (not a terminal here, as in a log) holds nothing but progress lines of phases
that started before the problem showed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from a3d_cli.main import app
from tests.eval.amodal_fixture import prediction, rectangle, write_tiny_dataset

runner = CliRunner()


class Inputs:
    """Files the cases point at, made on first use under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> str:
        return str(self.root / name)

    def malformed_json(self) -> str:
        (self.root / "malformed.json").write_text('{"images": [')
        return self.path("malformed.json")

    def not_a_checkpoint(self) -> str:
        (self.root / "model.pt").write_bytes(b"these bytes are no checkpoint")
        return self.path("model.pt")

    def empty_folder(self) -> str:
        (self.root / "empty").mkdir(exist_ok=True)
        return self.path("empty")

    def image(self) -> str:
        Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(self.root / "image.png")
        return self.path("image.png")

    def dataset(self) -> str:
        return str(write_tiny_dataset(self.root))

    def predictions_with_counts(self, counts: str) -> str:
        entries = [prediction(1, 1, 0.9, rectangle(2, 2, 6, 6)), prediction(1, 2, 0.8, rectangle(6, 10, 9, 13))]
        entries[1]["segmentation"]["counts"] = counts
        (self.root / "predictions.json").write_text(json.dumps(entries))
        return self.path("predictions.json")

    def a_file(self) -> str:
        (self.root / "taken").write_text("a file the user already has")
        return self.path("taken")


CASES = [
    pytest.param(
        lambda i: ["prepare", "shapenet", "--source", i.path("nowhere"), "--out", i.path("out")],
        "nowhere: source folder not found",
        id="prepare-shapenet-missing-source",
    ),
    pytest.param(
        lambda i: ["prepare", "shapenet", "--split", "0.5,0.5", "--out", i.path("out")],
        "--split: expected TRAIN,VAL,TEST fractions",
        id="prepare-shapenet-bad-split",
    ),
    pytest.param(
        lambda i: ["prepare", "shapenet", "--out", i.empty_folder()],
        "empty: already exists (pass --overwrite",
        id="prepare-shapenet-existing-out",
    ),
    pytest.param(
        lambda i: ["prepare", "scenes", "--image-size", "256", "--out", i.path("out")],
        "--image-size '256': write WIDTHxHEIGHT",
        id="prepare-scenes-bad-size",
    ),
    pytest.param(
        lambda i: ["prepare", "scenes", "--categories", "dragon", "--out", i.path("out")],
        "unknown categories dragon",
        id="prepare-scenes-unknown-category",
    ),
    pytest.param(
        lambda i: ["prepare", "d2sa", "-a", i.malformed_json(), "-i", i.empty_folder(), "-o", i.path("out")],
        "malformed.json: malformed JSON",
        id="prepare-d2sa-malformed-json",
    ),
    pytest.param(
        lambda i: ["prepare", "kins", "-a", i.path("absent.json"), "-i", i.empty_folder(), "-o", i.path("out")],
        "absent.json: file not found",
        id="prepare-kins-missing-annotations",
    ),
    pytest.param(
        lambda i: ["pretrain", "--data", i.path("nowhere"), "--out", i.path("out")],
        "dataset '{root}/nowhere': no folder",
        id="pretrain-missing-data",
    ),
    pytest.param(
        lambda i: ["pretrain", "--data", i.empty_folder(), "--out", i.path("out")],
        "empty: no ShapeNet dataset here",
        id="pretrain-not-a-dataset",
    ),
    pytest.param(
        lambda i: ["pretrain", "--data", i.dataset(), "--out", i.path("out")],
        "tiny/dataset.json: not a ShapeNet shard dataset",
        id="pretrain-coco-dataset",
    ),
    pytest.param(
        lambda i: ["finetune", "--dataset", i.path("nowhere"), "--out", i.path("out")],
        "dataset '{root}/nowhere': no folder",
        id="finetune-missing-dataset",
    ),
    pytest.param(
        lambda i: ["finetune", "--dataset", i.dataset(), "--out", i.path("out")],
        "tiny: no split 'train' (has val)",
        id="finetune-missing-split",
    ),
    pytest.param(
        lambda i: ["finetune", "--dataset", i.dataset(), "--anchor-sizes", "16,big", "--out", i.path("out")],
        "--anchor-sizes: expected comma-separated whole numbers",
        id="finetune-bad-anchors",
    ),
    pytest.param(
        lambda i: ["evaluate", "--dataset", i.dataset(), "--predictions", i.malformed_json()],
        "malformed.json: malformed JSON",
        id="evaluate-malformed-predictions",
    ),
    pytest.param(
        lambda i: ["evaluate", "--dataset", i.dataset(), "--predictions", i.predictions_with_counts("~~0b9")],
        "predictions entry 1: bad 'segmentation' (RLE counts hold characters outside the compressed alphabet",
        id="evaluate-counts-outside-alphabet",
    ),
    pytest.param(
        lambda i: ["evaluate", "--dataset", i.dataset(), "--predictions", i.predictions_with_counts("0h")],
        "predictions entry 1: bad 'segmentation' (RLE counts string ends inside a number",
        id="evaluate-counts-truncated",
    ),
    pytest.param(
        lambda i: ["evaluate", "--dataset", i.dataset(), "--predictions", i.predictions_with_counts("53F3")],
        "predictions entry 1: bad 'segmentation' (RLE counts decode to a negative run length)",
        id="evaluate-counts-negative-run",
    ),
    pytest.param(
        lambda i: ["evaluate", "--dataset", i.dataset(), "--checkpoint", i.path("absent.pt")],
        "absent.pt: checkpoint not found",
        id="evaluate-missing-checkpoint",
    ),
    pytest.param(
        lambda i: ["predict", i.image(), "--checkpoint", i.not_a_checkpoint(), "--out", i.a_file()],
        "taken: is a file, not a folder",
        id="predict-out-is-a-file",
    ),
    pytest.param(
        lambda i: ["predict", i.image(), "--checkpoint", i.not_a_checkpoint(), "--out", i.path("out")],
        "model.pt: not a readable checkpoint (not the zip archive torch.save writes; torch.load: ",
        id="predict-not-a-checkpoint",
    ),
    pytest.param(
        lambda i: ["predict", i.path("absent.png"), "--checkpoint", i.not_a_checkpoint(), "--out", i.path("out")],
        "absent.png: file or folder not found",
        id="predict-missing-image",
    ),
    pytest.param(
        lambda i: [
            "export-mesh",
            "--checkpoint",
            i.not_a_checkpoint(),
            "--image",
            i.image(),
            "--visible-mask",
            i.image(),
            "--out",
            i.path("out"),
        ],
        "model.pt: not a readable checkpoint",
        id="export-mesh-not-a-checkpoint",
    ),
    pytest.param(
        lambda i: ["export-mesh", "--checkpoint", i.not_a_checkpoint(), "--image", i.image(), "--out", i.path("out")],
        "--image and --visible-mask go together",
        id="export-mesh-image-without-mask",
    ),
]
"""Each case: the arguments, built from the inputs, and the text its error line holds ({root}: the temporary folder)."""


@pytest.mark.parametrize("arguments, expected", CASES)
def test_bad_input_is_one_line_without_traceback(
    tmp_path: Path, arguments: Callable[[Inputs], list[str]], expected: str
) -> None:
    command = arguments(Inputs(tmp_path))
    before = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")}
    result = runner.invoke(app, command)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: "), result.output
    assert expected.format(root=tmp_path) in errors[0]
    # stdout holds at most progress lines and the defaults the command announced before it failed
    assert not any(
        line.startswith("error") or expected.format(root=tmp_path) in line for line in result.stdout.splitlines()
    ), result.stdout
    assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")} == before  # nothing written or changed
