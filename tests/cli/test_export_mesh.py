"""`a3d export-mesh`: files written, a summary table, one-line errors, the shared --dataset vocabulary."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.canonical import AmodalSplit, amodal_annotation, write_dataset
from a3d_core.io.meshes import png_bytes
from tests.model.conftest import disc
from tests.pipelines.test_export_mesh import save_checkpoint, write_instance_files

runner = CliRunner()


def test_export_mesh_command_writes_the_files_and_a_summary(tmp_path):
    image, mask, _ = write_instance_files(tmp_path)
    checkpoint = save_checkpoint(tmp_path)
    result = runner.invoke(
        app,
        [
            "export-mesh",
            "--checkpoint",
            str(checkpoint),
            "--image",
            str(image),
            "--visible-mask",
            str(mask),
            "--out",
            str(tmp_path / "out"),
            "--category",
            "car",
            "--frames",
            "2",
            "--turntable-size",
            "16",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "42 vertices, 80 faces" in result.output and "car (given" in result.output
    for name in ("mesh.obj", "mesh.ply", "coarse_mask.png", "amodal_mask.png", "turntable.gif", "summary.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_export_mesh_command_fails_in_one_line(tmp_path):
    image, mask, _ = write_instance_files(tmp_path)
    result = runner.invoke(
        app,
        [
            "export-mesh",
            "--checkpoint",
            str(tmp_path / "missing.pt"),
            "--image",
            str(image),
            "--visible-mask",
            str(mask),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 1
    assert "missing.pt: checkpoint not found" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def write_named_dataset(data_root):
    """A one-instance dataset named ``tiny`` under ``data_root`` (a chair, its left half hidden)."""
    amodal = disc(10.0, centre=(30.0, 20.0), size=64).numpy().astype(bool)
    visible = amodal.copy()
    visible[:, :20] = False
    rgb = np.full((64, 64, 3), 30, np.uint8)
    rgb[amodal] = 220
    split = AmodalSplit(
        images=[{"id": 1, "file_name": "scene.png", "width": 64, "height": 64}],
        annotations=[amodal_annotation(7, 1, 2, amodal, visible)],
        categories=[{"id": 1, "name": "car"}, {"id": 2, "name": "chair"}],
    )
    write_dataset(data_root / "tiny", "tiny", "test", {"test": split}, write_images=[("scene.png", png_bytes(rgb))])


@pytest.mark.parametrize("option", ["--dataset", "--data"])
def test_export_mesh_reads_a_named_dataset_under_the_data_root(tmp_path, option):
    """--dataset names a dataset as every command does (under --data-root); --data, its old name, still works."""
    write_named_dataset(tmp_path / "data")
    arguments = [option, "tiny", "--data-root", str(tmp_path / "data"), "--index", "0", "--crop", "full-image"]
    result = runner.invoke(
        app,
        [
            "export-mesh",
            "--checkpoint",
            str(save_checkpoint(tmp_path)),
            *arguments,
            "--out",
            str(tmp_path / "out"),
            "--frames",
            "1",
            "--turntable-size",
            "16",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ground-truth category" in result.output and "chair" in result.output
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["ground_truth_category"] == "chair"


def test_export_mesh_refuses_a_dataset_given_twice_and_an_unknown_crop(tmp_path):
    twice = runner.invoke(app, ["export-mesh", "--dataset", "a", "--data", "b", "--out", str(tmp_path / "out")])
    assert twice.exit_code == 2 and "give --dataset once (--data is its old name)" in " ".join(twice.output.split())
    crop = runner.invoke(app, ["export-mesh", "--crop", "tight", "--out", str(tmp_path / "out")])
    assert crop.exit_code == 2 and "--crop" in crop.output
    assert not (tmp_path / "out").exists()
