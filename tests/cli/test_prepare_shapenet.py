"""`a3d prepare shapenet`: writes a dataset, a preview and a summary; bad input is one line, exit 1."""

import imageio.v3 as iio
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.shapenet import ShapeNetAmodalDataset

runner = CliRunner()
TINY = ["prepare", "shapenet", "--objects-per-category", "1", "--views", "2", "--image-size", "16"]


def test_prepare_writes_dataset_preview_and_summary(tmp_path):
    result = runner.invoke(app, [*TINY, "--data-root", str(tmp_path), "--preview", str(tmp_path / "p.png"), "--seed", "2"])
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
