"""``a3d prepare kins | kins2020 | d2sa | cocoa-cls | cocoa`` through the real Typer app."""

import json

import pytest
from typer.testing import CliRunner

from a3d_cli.main import app
from tests.data.formats_fixtures import cocoa_files, d2sa_files, kins2020_files, kins_files

runner = CliRunner()


def test_kins_goes_under_the_data_root_and_prints_the_report(tmp_path):
    annotation_file, images = kins_files(tmp_path / "src")
    result = runner.invoke(
        app,
        [
            "prepare",
            "kins",
            "--annotations",
            str(annotation_file),
            "--images",
            str(images),
            "--data-root",
            str(tmp_path / "root"),
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "root" / "kins" / "dataset.json").read_text())
    assert manifest["splits"] == ["train"] and manifest["source"] == "kins"
    for text in ("instances per category", "pedestrian", "occlusion rate", "[0.5, 0.6)", "no problems found"):
        assert text in result.output


def test_d2sa_merges_repeated_annotations_options(tmp_path):
    rot0, augmented, images = d2sa_files(tmp_path / "src")
    out = tmp_path / "d2sa"
    args = ["prepare", "d2sa", "-a", str(rot0), "-a", str(augmented), "-i", str(images), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    split = json.loads((out / "train.json").read_text())
    assert [a["id"] for a in split["annotations"]] == [1, 2, 3]


def test_cocoa_keep_stuff_and_kins2020_split(tmp_path):
    cocoa_file, cocoa_images = cocoa_files(tmp_path / "cocoa")
    result = runner.invoke(
        app,
        [
            "prepare",
            "cocoa",
            "-a",
            str(cocoa_file),
            "-i",
            str(cocoa_images),
            "--out",
            str(tmp_path / "c"),
            "--keep-stuff",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "c" / "train.json").read_text())["annotations"]) == 3
    kins_file, kins_images = kins2020_files(tmp_path / "k")
    result = runner.invoke(
        app,
        [
            "prepare",
            "kins2020",
            "-a",
            str(kins_file),
            "-i",
            str(kins_images),
            "-o",
            str(tmp_path / "k20"),
            "--split",
            "val",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "k20" / "val.json").is_file()


@pytest.mark.parametrize("command", ["d2sa", "cocoa-cls", "cocoa", "kins2020"])
def test_a_kins_file_to_another_command_is_a_one_line_error(tmp_path, command):
    annotation_file, images = kins_files(tmp_path / "src")
    result = runner.invoke(
        app, ["prepare", command, "-a", str(annotation_file), "-i", str(images), "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "instances_train.json: not a" in lines[0]
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_strict_prints_the_problems_then_fails(tmp_path):
    annotation_file, images = kins_files(tmp_path / "src")
    (images / "000002.png").unlink()
    result = runner.invoke(
        app, ["prepare", "kins", "-a", str(annotation_file), "-i", str(images), "-o", str(tmp_path / "o"), "--strict"]
    )
    assert result.exit_code == 1
    assert "missing image" in result.output and "000002.png not found" in result.output
    assert "error: --strict: 1 problem found, nothing written" in result.output
    assert not (tmp_path / "o").exists()


def test_help_explains_the_options():
    result = runner.invoke(app, ["prepare", "cocoa", "--help"])
    assert result.exit_code == 0
    for option in (
        "--annotations",
        "--images",
        "--split",
        "--out",
        "--data-root",
        "--strict",
        "--overwrite",
        "--keep-stuff",
    ):
        assert option in result.output
    assert "--keep-stuff" not in runner.invoke(app, ["prepare", "kins", "--help"]).output


def test_names_from_the_files_are_printed_literally(tmp_path):
    annotation_file, images = kins_files(tmp_path / "src")
    data = json.loads(annotation_file.read_text())
    data["categories"][2]["name"] = "[red]car[/red]"  # would be rich markup if not escaped
    annotation_file.write_text(json.dumps(data))
    result = runner.invoke(
        app, ["prepare", "kins", "-a", str(annotation_file), "-i", str(images), "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "[red]car[/red]" in result.output
