"""The deocclusion completer: a class-agnostic network trained on modal masks completes any category,
each instance shown as it was trained ((visible, eraser, 0)); networks with several categories are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.errors import InputError
from a3d_core.model.asm import ASMSettings, build_stage2
from a3d_core.pipelines.completers import (
    CompleterRequest,
    DeocclusionCompleter,
    build_completer,
    load_checkpoint_completer,
)
from tests.model.tiny_scenes import write_pretrain_checkpoint, write_tiny_scenes


def _write_unet_checkpoint(path: Path, category_names: list[str]) -> Path:
    torch.manual_seed(0)
    model = build_stage2("2d-unet", category_names, ASMSettings(image_size=32))
    torch.save({"model": model.state_dict(), "model_config": model.config(), "category_names": category_names}, path)
    return path


def test_any_category_is_completed_from_its_masks_with_the_others_as_eraser(tmp_path: Path) -> None:
    checkpoint = _write_unet_checkpoint(tmp_path / "modal.pt", ["object"])
    completer = build_completer("deocclusion", CompleterRequest(checkpoint=checkpoint, device="cpu"))
    assert isinstance(completer, DeocclusionCompleter) and "Deocclusion recipe" in completer.name
    image = torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[4.0, 5.0, 30.0, 28.0], [20.0, 10.0, 44.0, 36.0]])
    visible = torch.zeros(2, 40, 48)
    visible[0, 8:20, 6:20] = 1.0
    visible[1, 14:30, 18:40] = 1.0
    got = completer.complete([image], [boxes], [visible], [["chair", "giraffe"]])[0]
    assert got["shape_labels"].tolist() == [1, 1] and got["amodal_masks"].shape == (2, 40, 48)
    # the same network given instance 0 as it was trained: R = its visible mask, G = the other instance's
    plain = load_checkpoint_completer(checkpoint, device="cpu")
    encoded = torch.stack([visible[0], visible[1] * (1 - visible[0]), torch.zeros(40, 48)])
    expected = plain.complete([encoded], [boxes[:1]], [visible[:1]], [["object"]])[0]
    assert torch.allclose(got["amodal_masks"][:1], expected["amodal_masks"], atol=1e-5)
    # the image's pixels are not read
    again = completer.complete([torch.zeros_like(image)], [boxes], [visible], [["chair", "giraffe"]])[0]
    assert torch.equal(again["amodal_masks"], got["amodal_masks"])


def test_a_class_agnostic_3d_network_completes_masks_and_several_categories_are_refused(tmp_path: Path) -> None:
    completer = build_completer(
        "deocclusion", CompleterRequest(checkpoint=write_pretrain_checkpoint(tmp_path / "a3d.pt", ["object"]))
    )
    visible = torch.zeros(1, 40, 48)
    visible[0, 8:20, 6:20] = 1.0
    got = completer.complete([torch.rand(3, 40, 48)], [torch.tensor([[4.0, 5.0, 30.0, 28.0]])], [visible], [["cup"]])
    assert set(got[0]) == {"amodal_masks", "shape_labels"} and got[0]["amodal_masks"].shape == (1, 40, 48)
    checkpoint = _write_unet_checkpoint(tmp_path / "two.pt", ["car", "chair"])
    with pytest.raises(InputError, match="needs a class-agnostic network"):
        build_completer("deocclusion", CompleterRequest(checkpoint=checkpoint, device="cpu"))
    with pytest.raises(InputError, match="needs --checkpoint"):
        build_completer("deocclusion", CompleterRequest(device="cpu"))


def test_the_completion_protocol_runs_it_from_the_command_line(tmp_path: Path) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=0, val_images=2)
    checkpoint = _write_unet_checkpoint(tmp_path / "modal.pt", ["object"])
    arguments = ["evaluate", "--dataset", str(folder.root), "--protocol", "completion", "--completer", "deocclusion"]
    arguments += ["--checkpoint", str(checkpoint), "--json", str(tmp_path / "report.json"), "--device", "cpu"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["miou"]["num_instances"] == 4 and 0.0 <= report["miou"]["miou"] <= 1.0
