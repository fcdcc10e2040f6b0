"""a3d demo --quick: every step of the pipeline connects and the browsable folder is complete."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from typer.testing import CliRunner

from a3d_cli.main import app


def test_demo_quick_writes_a_browsable_folder(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--device", "cpu", "--model", "a3d"])
    assert result.exit_code == 0, result.output

    index = (out / "index.md").read_text()
    steps = (
        "prepare shapenet",
        "pretrain",
        "prepare scenes",
        "finetune",
        "evaluate",
        "complete ground truth",
        "predict",
    )
    for step in steps:
        assert f"| {step} | " in index  # every step ran and was timed
    evaluation = json.loads((out / "evaluation.json").read_text())
    for method in ("model", "visible_baseline", "stage2_on_ground_truth", "ground_truth_visible"):
        assert set(evaluation[method]) == {"AP", "AP50", "AP75", "mIoU", "mIoU_occ"}
        assert all(-1.0 <= value <= 1.0 for value in evaluation[method].values())
    assert "visible mask as amodal mask" in (out / "evaluation.md").read_text()
    # the front page leads with stage 2
    assert index.index("## What stage 2 does, beside what stage 1 detects") < index.index("## 1.")
    # `a3d complete` on the ground-truth visible masks
    completed = json.loads((out / "complete" / "predictions.json").read_text())
    handed = json.loads((out / "completion" / "visible.json").read_text())["annotations"]
    assert len(completed) == len(handed) > 0
    for preview in ("shapenet.png", "scenes.png"):
        Image.open(out / "previews" / preview).verify()
    assert evaluation["ground_truth_visible"]["AP"] < 1.0  # the ground truth's visible masks are not its amodal masks
    assert sorted((out / "completion").glob("*.png"))[0].relative_to(out).as_posix() in index
    overlays = sorted((out / "overlays").glob("*.png"))
    assert overlays and all(f"({path.relative_to(out).as_posix()})" in index for path in overlays)
    assert Image.open(overlays[0]).size[0] == 3 * 192 + 2 * 4  # panels: input | visible | amodal, 192 pixels each
    assert "detections scored at least 0.0 in these images" in index or "No detection scored" in index
    assert index.index("![the most occluded val instances](summary.png)") < index.index("## 1.")  # the summary leads
    summary = Image.open(out / "summary.png")
    # a header and QUICK's 2 most occluded instances, with ground truth
    assert summary.size == (4 * 192 + 3 * 4, 22 + 2 * (192 + 4))
    assert (out / "predictions" / "predictions.json").is_file()
    assert (out / "runs" / "scenes" / "last.pt").is_file() and (out / "runs" / "pretrain" / "last.pt").is_file()
    meshes = sorted(path.suffix for path in (out / "meshes").iterdir())
    assert meshes == [".gif", ".obj"]  # QUICK exports one occluded instance
    assert all(f"({path.relative_to(out).as_posix()})" in index for path in (out / "meshes").iterdir())

    again = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--device", "cpu"])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_demo_with_a_2d_stage2_trains_that_kind_and_exports_no_meshes(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--device", "cpu", "--model", "2d-unet"])
    assert result.exit_code == 0, result.output
    pretrained = torch.load(out / "runs" / "pretrain" / "last.pt", weights_only=True)
    assert pretrained["model_config"]["kind"] == "2d-unet"
    finetuned = torch.load(out / "runs" / "scenes" / "last.pt", weights_only=True)
    assert finetuned["model_config"]["settings"]["stage2_kind"] == "2d-unet"
    assert not any((out / "meshes").iterdir())
    index = (out / "index.md").read_text()
    assert "stage 2: `2d-unet`" in index and "reconstructs no meshes" in index
    assert len(json.loads((out / "complete" / "predictions.json").read_text())) > 0
