"""`a3d pretrain --camera`: the three camera sources through the command, on data from `a3d prepare shapenet`."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.framing import FramedViews
from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
from a3d_core.data.shapenet import ShapeNetAmodalDataset
from a3d_core.model.asm import build_stage2, load_stage2_from_checkpoint
from a3d_core.model.encoder import EncoderSettings
from a3d_core.train import pretrain as pretrain_module
from a3d_core.train.pretrain import shapenet_components

TINY_ENCODER = EncoderSettings(channels=(4, 4, 8, 8, 8), fc_dims=(16, 16, 16))


def tiny_networks():
    """The real data and network, with narrow encoders (the command's other settings kept)."""

    def build(kind, names, settings):
        viewpoint = dataclasses.replace(settings.viewpoint, encoder=TINY_ENCODER)
        return build_stage2(kind, names, dataclasses.replace(settings, encoder=TINY_ENCODER, viewpoint=viewpoint))

    return dataclasses.replace(shapenet_components(), build_model=build)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapenet") / "data"
    prepare_shapenet(
        PrepareShapeNetConfig(
            out=out,
            categories=("chair", "table"),
            objects_per_category=4,
            views=4,
            image_size=16,
            split_fractions=(0.5, 0.25, 0.25),
            seed=1,
            min_amodal_pixels=4,
        )
    )
    return out


def pretrain_command(shapes, out, *options):
    arguments = [
        "pretrain",
        "--model",
        "a3d",
        "--dataset",
        str(shapes),
        "--out",
        str(out),
        "--steps",
        "2",
        "--batch-size",
        "4",
    ]
    arguments += ["--template-level", "0", "--val-instances", "4", "--device", "cpu", *options]
    return CliRunner().invoke(app, arguments, env={"COLUMNS": "200"})


@pytest.mark.parametrize(
    "camera, hypotheses, supervised",
    [("learned", "4", False), ("supervised", "4", True), ("supervised", "1", True), ("oracle", "1", False)],
)
def test_each_camera_source_pretrains_and_is_evaluated(shapes, tmp_path, monkeypatch, camera, hypotheses, supervised):
    monkeypatch.setattr(pretrain_module, "shapenet_components", tiny_networks)
    result = pretrain_command(shapes, tmp_path / "run", "--camera", camera, "--azimuth-hypotheses", hypotheses)
    assert result.exit_code == 0, result.output
    model = load_stage2_from_checkpoint(tmp_path / "run" / "last.pt")
    assert model.settings.viewpoint.camera == camera
    assert model.settings.viewpoint.azimuth_hypotheses == int(hypotheses)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = {key for record in records if record["split"] == "train" for key in record}
    assert ("loss/camera_supervision" in logged) == supervised, sorted(logged)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(results["evaluations"]) == {"test"}  # the oracle is evaluated at the test views' true cameras
    assert 0.0 <= results["evaluations"]["test"]["model"]["miou"] <= 1.0


def test_the_oracle_renders_at_the_true_camera_through_pretraining(shapes, tmp_path, monkeypatch):
    monkeypatch.setattr(pretrain_module, "shapenet_components", tiny_networks)
    result = pretrain_command(shapes, tmp_path / "run", "--camera", "oracle", "--azimuth-hypotheses", "1")
    assert result.exit_code == 0, result.output
    model = load_stage2_from_checkpoint(tmp_path / "run" / "last.pt").eval()
    test_set = FramedViews(ShapeNetAmodalDataset(shapes, "test"), 1.1)  # as pretraining frames them
    items = [test_set[i] for i in range(3)]
    batch = {key: torch.stack([item[key] for item in items]) for key in ("rgb", "visible", "elevation", "azimuth")}
    with torch.no_grad():
        viewpoint = model(batch)["viewpoint"]
    assert torch.allclose(torch.rad2deg(viewpoint.azimuth), batch["azimuth"], atol=1e-4)
    assert torch.allclose(torch.rad2deg(viewpoint.elevation), batch["elevation"], atol=1e-4)


@pytest.mark.parametrize(
    "options, message",
    [
        (
            ["--camera", "oracle", "--azimuth-hypotheses", "4"],
            "the oracle camera is the true one: it takes azimuth_hypotheses=1, got 4",
        ),
        (["--camera", "supervised", "--model", "2d"], "--model 2d: camera 'supervised' is a camera of the 3D branch"),
    ],
)
def test_camera_refusals_are_one_line_errors(shapes, tmp_path, options, message):
    result = pretrain_command(shapes, tmp_path / "run", *options)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_the_help_names_the_camera_sources_and_the_upper_bound():
    result = CliRunner().invoke(app, ["pretrain", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--camera" in result.output and "learned|supervised|oracle" in result.output.replace(" ", "")
    assert "UPPER BOUND" in result.output
    unknown = CliRunner().invoke(app, ["pretrain", "--camera", "true"])
    assert unknown.exit_code == 2 and "--camera" in unknown.output
