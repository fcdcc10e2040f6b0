"""`a3d prepare shapenet`: writes a dataset, a preview and a summary; bad input is one line, exit 1."""

import imageio.v3 as iio
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.shapenet import ShapeNetAmodalDataset

runner = CliRunner()
TINY = ["prepare", "shapenet", "--objects-per-category", "1", "--views", "2", "--image-size", "16"]


def test_prepare_writes_dataset_preview_and_summary(tmp_path):
    result = runner.invoke(
        app, [*TINY, "--data-root", str(tmp_path), "--preview", str(tmp_path / "p.png"), "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "train" in result.output and "views/s" in result.output
    dataset = ShapeNetAmodalDataset(tmp_path / "shapenet", "train")  # default --out: <data root>/shapenet
    assert len(dataset.categories) == 13 and len(dataset) == 2 * len(set(dataset.object_index.tolist()))
    preview = iio.imread(tmp_path / "p.png")
    assert preview.shape[0] == 13 * (96 + 3) + 3  # one row per category

    again = runner.invoke(app, [*TINY, "--data-root", str(tmp_path)])
    assert again.exit_code == 1 and "already exists (pass --overwrite" in again.output


def test_bad_options_are_one_line_errors(tmp_path):
    result = runner.invoke(app, [*TINY, "--out", str(tmp_path / "o"), "--holdout-views", "x-y"])
    assert result.exit_code == 1 and "--holdout-views: expected FIRST-LAST" in result.output
    result = runner.invoke(app, [*TINY, "--out", str(tmp_path / "o"), "--split", "0.5,0.5"])
    assert result.exit_code == 1 and "--split: expected TRAIN,VAL,TEST" in result.output
    result = runner.invoke(app, [*TINY, "--out", str(tmp_path / "o"), "--source", str(tmp_path / "none")])
    assert result.exit_code == 1 and "source folder not found" in result.output
    assert "Traceback" not in result.output


def test_viewpoint_protocol_options_reach_the_dataset_and_bad_ones_fail_before_rendering(tmp_path):
    result = runner.invoke(
        app,
        [
            "prepare",
            "shapenet",
            "--objects-per-category",
            "1",
            "--views",
            "8",
            "--image-size",
            "16",
            "--elevations",
            "0,30",
            "--holdout-elevations",
            "60",
            "--holdout-views",
            "3",
            "--holdout-pairs",
            "0:6",
            "--split",
            "0.4,0.2,0.4",
            "--out",
            str(tmp_path / "d"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "views [3, 9, 15, 21]" in result.output and "0:6, 0:18" in result.output  # the closure is printed
    elevations = set(ShapeNetAmodalDataset(tmp_path / "d", "test_elevation").elevation.tolist())
    assert elevations == {60.0}
    for options, message in [
        (["--elevations", "0,30", "--holdout-elevations", "30"], "also training elevations"),
        (["--elevations", "80"], "outside the viewpoint estimator's range"),
        (["--holdout-pairs", "4-5"], "ELEVATION:FIRST-LAST"),
        (["--elevations", "zero"], "--elevations: expected comma-separated degrees"),
    ]:
        result = runner.invoke(app, [*TINY, "--out", str(tmp_path / "bad"), *options])
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
        assert not (tmp_path / "bad").exists()
