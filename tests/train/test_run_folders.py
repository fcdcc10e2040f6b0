"""Run folders: default folders never overwrite a run, the newest run of a kind (and dataset) is found,
and the commands that default to one say which or say how to get one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from a3d_cli.finetune import default_init
from a3d_cli.main import app
from a3d_core.errors import InputError
from a3d_core.train import pretrain as pretrain_module
from a3d_core.train.checkpoint import load_checkpoint
from a3d_core.train.run_folders import (
    FINE_TUNED,
    PRETRAINING,
    dataset_name,
    fresh_run_folder,
    latest_run_folder,
    newest_checkpoint,
    newest_run,
    read_run,
)
from tests.model.tiny_scenes import write_pretrain_checkpoint, write_two_stage_checkpoint
from tests.train.test_pretrain import toy_components

runner = CliRunner()


def with_config(path: Path, config: dict, mtime: int) -> Path:
    """Add the training configuration a command records to a checkpoint written by the tiny builders."""
    checkpoint = torch.load(path, weights_only=True)
    torch.save({**checkpoint, "config": config}, path)
    os.utime(path, (mtime, mtime))
    return path


def test_default_folders_are_numbered_and_resume_takes_the_latest(tmp_path: Path) -> None:
    assert fresh_run_folder("pretrain", tmp_path) == latest_run_folder("pretrain", tmp_path) == tmp_path / "pretrain"
    (tmp_path / "pretrain").mkdir()
    assert fresh_run_folder("pretrain", tmp_path) == tmp_path / "pretrain"  # a folder without last.pt holds no run
    (tmp_path / "pretrain" / "last.pt").write_bytes(b"run")
    assert fresh_run_folder("pretrain", tmp_path) == tmp_path / "pretrain-2"
    assert latest_run_folder("pretrain", tmp_path) == tmp_path / "pretrain"
    (tmp_path / "pretrain-2").mkdir()
    (tmp_path / "pretrain-2" / "last.pt").write_bytes(b"run")
    assert fresh_run_folder("pretrain", tmp_path) == tmp_path / "pretrain-3"
    assert latest_run_folder("pretrain", tmp_path) == tmp_path / "pretrain-2"
    assert fresh_run_folder("d2sa", tmp_path) == tmp_path / "d2sa"


def test_the_newest_run_of_a_kind_and_a_dataset(tmp_path: Path) -> None:
    for name in ("pretrain", "d2sa", "d2sa-2", "kins", "broken"):
        (tmp_path / name).mkdir()
    assert newest_run(PRETRAINING, tmp_path) is None
    with_config(
        write_pretrain_checkpoint(tmp_path / "pretrain" / "best.pt", ["car"]),
        {"pretrain": {"data": "data/shapenet"}},
        1_000,
    )
    with_config(
        write_two_stage_checkpoint(tmp_path / "d2sa" / "best.pt", ["car"]),
        {"finetune": {"dataset": "data/d2sa"}},
        2_000,
    )
    with_config(
        write_two_stage_checkpoint(tmp_path / "d2sa-2" / "last.pt", ["car"]),
        {"finetune": {"dataset": "/else/d2sa"}},
        3_000,
    )
    with_config(
        write_two_stage_checkpoint(tmp_path / "kins" / "last.pt", ["car"]),
        {"finetune": {"dataset": "data/kins"}},
        4_000,
    )
    (tmp_path / "broken" / "best.pt").write_bytes(b"not a checkpoint")
    os.utime(tmp_path / "broken" / "best.pt", (5_000, 5_000))

    pretrained = newest_run(PRETRAINING, tmp_path)
    assert (pretrained.checkpoint, pretrained.dataset) == (tmp_path / "pretrain" / "best.pt", Path("data/shapenet"))
    assert newest_run(FINE_TUNED, tmp_path).checkpoint == tmp_path / "kins" / "last.pt"
    # matched by folder name
    assert newest_run(FINE_TUNED, tmp_path, dataset="d2sa").checkpoint == tmp_path / "d2sa-2" / "last.pt"
    assert newest_run(FINE_TUNED, tmp_path, dataset="data/kins").checkpoint.parent == tmp_path / "kins"
    assert newest_run(FINE_TUNED, tmp_path, dataset="cocoa") is None
    assert read_run(tmp_path / "broken" / "best.pt") is None


def test_a_dataset_is_named_by_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert dataset_name("d2sa") == dataset_name("data/d2sa/") == dataset_name(tmp_path / "d2sa") == "d2sa"
    (tmp_path / "kins").mkdir()
    monkeypatch.chdir(tmp_path / "kins")
    assert dataset_name(".") == "kins"


def test_the_newest_fine_tuned_checkpoint_is_found(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no fine-tuned run under .*a3d finetune --dataset scenes"):
        newest_checkpoint(FINE_TUNED, tmp_path)
    (tmp_path / "pretrain").mkdir()
    write_pretrain_checkpoint(tmp_path / "pretrain" / "best.pt", ["car"])  # a stage-2 run: not a candidate
    for run in ("old", "new"):
        (tmp_path / run).mkdir()
        write_two_stage_checkpoint(tmp_path / run / "last.pt", ["car"])
    write_two_stage_checkpoint(tmp_path / "new" / "best.pt", ["car"])
    os.utime(tmp_path / "old" / "last.pt", (1_000, 1_000))
    os.utime(tmp_path / "new" / "last.pt", (2_000, 2_000))
    os.utime(tmp_path / "new" / "best.pt", (1_500, 1_500))
    assert newest_checkpoint(FINE_TUNED, tmp_path) == tmp_path / "new" / "best.pt"  # best.pt of the newest run
    os.utime(tmp_path / "old" / "last.pt", (3_000, 3_000))
    assert newest_checkpoint(FINE_TUNED, tmp_path) == tmp_path / "old" / "last.pt"


def test_pretrain_without_out_never_overwrites_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pretrain_module, "shapenet_components", toy_components)
    monkeypatch.setenv("A3D_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv("A3D_DATA_ROOT", str(tmp_path / "data"))
    (tmp_path / "data" / "shapenet").mkdir(parents=True)
    tiny = ["pretrain", "--batch-size", "4", "--device", "cpu"]

    first = runner.invoke(app, [*tiny, "--steps", "1"])
    assert first.exit_code == 0, first.output
    said = " ".join(first.output.split())
    assert (
        f"data: {tmp_path / 'data' / 'shapenet'} (the default" in said
        and f"run folder: {tmp_path / 'runs' / 'pretrain'} (the default" in said
    )
    second = runner.invoke(app, [*tiny, "--steps", "1"])
    assert second.exit_code == 0, second.output
    assert f"{tmp_path / 'runs' / 'pretrain'} holds a run already" in " ".join(second.output.split())
    resumed = runner.invoke(app, [*tiny, "--steps", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(tmp_path / "runs" / "pretrain" / "last.pt")["step"] == 1
    assert load_checkpoint(tmp_path / "runs" / "pretrain-2" / "last.pt")["step"] == 2  # --resume continued the latest


def test_resumed_fine_tuning_starts_stage_2_as_the_run_began(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with_config(
        write_two_stage_checkpoint(tmp_path / "run" / "last.pt", ["car"]),
        {"finetune": {"init": "runs/pretrain/best.pt"}},
        1_000,
    )
    assert default_init(tmp_path / "run", resume=True) == Path("runs/pretrain/best.pt")
    with_config(tmp_path / "run" / "last.pt", {"finetune": {"init": None}}, 1_000)
    assert default_init(tmp_path / "run", resume=True) is None


def test_defaults_that_find_nothing_say_how_to_get_it(tmp_path: Path) -> None:
    evaluated = runner.invoke(app, ["evaluate", "--dataset", "d2sa"])
    assert evaluated.exit_code == 1 and "no fine-tuned run for d2sa under" in evaluated.output
    assert "a3d finetune --dataset d2sa" in " ".join(evaluated.output.split()) and "Traceback" not in evaluated.output
    exported = runner.invoke(app, ["export-mesh", "--out", str(tmp_path / "meshes")])
    assert (
        exported.exit_code == 1 and "no pretraining run under" in exported.output and "a3d pretrain" in exported.output
    )
    both = runner.invoke(app, ["finetune", "--dataset", "d2sa", "--init", "x.pt", "--no-init"])
    assert both.exit_code == 1 and "--init FILE and --no-init exclude each other" in both.output
    assert not (tmp_path / "meshes").exists()


@pytest.mark.parametrize(
    "command, kind",
    [
        (["predict", "image.png", "--out", "out"], "fine-tuned run"),
        (["complete", "image.png", "--visible", "visible.json", "--out", "out"], "fine-tuned run"),
        (["evaluate", "--dataset", "d2sa"], "fine-tuned run for d2sa"),
        (["export-mesh", "--out", "out"], "pretraining run"),
    ],
)
def test_every_command_that_looks_up_a_run_takes_runs_root(tmp_path: Path, command: list[str], kind: str) -> None:
    """--runs-root overrides $A3D_RUNS_ROOT wherever the newest run is looked up, found or not."""
    elsewhere = tmp_path / "elsewhere"
    missing = runner.invoke(app, [*command, "--runs-root", str(elsewhere)])
    assert missing.exit_code == 1 and f"no {kind} under {elsewhere}" in " ".join(missing.output.split())


def test_the_newest_run_under_runs_root_is_announced(tmp_path: Path) -> None:
    (tmp_path / "elsewhere" / "pretrain").mkdir(parents=True)
    checkpoint = write_pretrain_checkpoint(tmp_path / "elsewhere" / "pretrain" / "last.pt", ["car"])
    result = runner.invoke(app, ["export-mesh", "--runs-root", str(tmp_path / "elsewhere"), "--out", str(tmp_path)])
    said = " ".join(result.output.split())
    assert f"checkpoint: {checkpoint}, the newest pretraining run under {tmp_path / 'elsewhere'}" in said
