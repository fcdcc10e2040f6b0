"""Polygons with NaN, infinite and 1e9 coordinates through the real CLI, in a process limited to
4 GiB of address space: pycocotools' rasteriser would exceed it (and crash) without the guard.

``a3d complete --visible`` and ``a3d evaluate --predictions`` read other programs' output: a
non-finite coordinate stops them with exit 1 and one line naming the entry, a coordinate of 1e9 is
clipped and the run goes on.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from a3d_core.data.canonical import decode_segmentation
from tests.eval.amodal_fixture import write_tiny_dataset
from tests.model.tiny_scenes import HEIGHT, WIDTH, write_pretrain_checkpoint

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 4 << 30
"""Bytes of address space: enough to import torch and run a command, far below what a polygon
with a 1e9 coordinate makes pycocotools allocate."""
SQUARE = [10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]
STRIP = [20.0, 35.0, 1e9, 35.0, 1e9, 45.0, 20.0, 45.0]
"""A strip from x = 20 to 1e9: inside the 64-wide images, the pixels x >= 20 of rows 35 to 44."""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _a3d(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "a3d_cli", *arguments],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(ROOT)},
        preexec_fn=_limit_memory,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_error_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 1, (run.returncode, run.stderr[-2000:])
    errors = run.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: "), run.stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("polygons")
    (root / "images").mkdir()
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), 128, np.uint8)).save(root / "images" / "a.png")
    write_pretrain_checkpoint(root / "pretrain.pt", ["car"])
    write_tiny_dataset(root)
    return root


def _visible_file(root: Path, name: str, polygon: list[float]) -> Path:
    entries = [
        {"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": [SQUARE]},
        {"image_id": 1, "category_id": 1, "score": 0.8, "segmentation": [polygon]},
    ]
    content = {"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "car"}]}
    path = root / name
    path.write_text(json.dumps({**content, "annotations": entries}))
    return path


def _complete(root: Path, visible: Path, out: str) -> subprocess.CompletedProcess:
    return _a3d(
        "complete",
        str(root / "images"),
        "--visible",
        str(visible),
        "--checkpoint",
        str(root / "pretrain.pt"),
        "--out",
        str(root / out),
        "--device",
        "cpu",
    )


def _predictions_file(root: Path, name: str, polygon: list[float]) -> Path:
    entries = [
        {"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]},
        {"image_id": 1, "category_id": 2, "score": 0.8, "segmentation": [polygon]},
    ]
    path = root / name
    path.write_text(json.dumps(entries))
    return path


def _evaluate(root: Path, predictions: Path) -> subprocess.CompletedProcess:
    report = root / f"{predictions.stem}-report.json"
    return _a3d("evaluate", "--dataset", str(root / "tiny"), "--predictions", str(predictions), "--json", str(report))


def test_complete_refuses_a_nan_and_clips_1e9(inputs: Path) -> None:
    nan = _complete(inputs, _visible_file(inputs, "nan.json", [10, 10, float("nan"), 10, 30, 30]), "nan-out")
    error = _one_error_line(nan)
    assert "nan.json: entry 1: bad 'segmentation'" in error and "polygon coordinate 2 is nan" in error
    assert not (inputs / "nan-out").exists()

    huge = _complete(inputs, _visible_file(inputs, "huge.json", STRIP), "huge-out")
    assert huge.returncode == 0, huge.stderr[-2000:]
    predictions = json.loads((inputs / "huge-out" / "predictions.json").read_text())
    visible = decode_segmentation(predictions[1]["visible_mask"], HEIGHT, WIDTH)
    expected = np.zeros((HEIGHT, WIDTH), np.uint8)
    expected[35:45, 20:] = 1
    np.testing.assert_array_equal(visible, expected)


def test_evaluate_refuses_an_infinity_and_clips_1e9(inputs: Path) -> None:
    infinite = _evaluate(inputs, _predictions_file(inputs, "inf.json", [10, 6, 14, 6, 14, float("inf")]))
    error = _one_error_line(infinite)
    assert "predictions entry 1: bad 'segmentation'" in error and "polygon coordinate 5 is inf" in error

    # the chair (3 x 3 pixels at x 10..12, y 6..8 in a 16-wide image) against a strip from x = 10 to
    # 1e9 over its rows: clipped, the strip covers x 10..15 in the image, IoU 9 / 18
    huge = _evaluate(inputs, _predictions_file(inputs, "huge.json", [10, 6, 1e9, 6, 1e9, 9, 10, 9]))
    assert huge.returncode == 0, huge.stderr[-2000:]
    report = json.loads((inputs / "huge-report.json").read_text())
    assert report["miou"]["per_category"]["chair"]["iou"] == 0.5
