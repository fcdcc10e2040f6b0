"""`a3d export-mesh`: files written, a summary table, and one-line errors."""

from typer.testing import CliRunner

from a3d_cli.main import app
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
