"""Progress without a terminal: plain lines at an interval, a line per phase start and end; a bar on a terminal."""

from __future__ import annotations

import io
import re

from rich.console import Console
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_cli.progress import ProgressDisplay
from a3d_core.train import pretrain as pretrain_module
from tests.train.test_pretrain import toy_components

runner = CliRunner()  # its output is not a terminal, as in `a3d pretrain ... > log`

TRAIN_LINE = re.compile(
    r"^\[a3d\] train: (\d)/4 steps \(\d+%\) \| loss \d+\.\d{4} \| val mIoU (-|\d\.\d{3}) \| inst/s \d+\.\d"
    r" \| steps/s \d+\.\d\d \| elapsed \d:\d\d:\d\d \| left (\d:\d\d:\d\d|\?)$"
)


def _pretrain(tmp_path, monkeypatch, *options: str, env: dict[str, str] | None = None):
    monkeypatch.setattr(pretrain_module, "shapenet_components", toy_components)
    (tmp_path / "data").mkdir()
    return runner.invoke(
        app,
        [
            *options,
            "pretrain",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "run"),
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--val-every",
            "2",
            "--device",
            "cpu",
        ],
        env=env,
    )


def test_pretrain_prints_a_line_per_step_at_interval_zero(tmp_path, monkeypatch):
    result = _pretrain(tmp_path, monkeypatch, "--progress-every", "0")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("[a3d]")]
    assert lines[0] == "[a3d] train: started (4 steps)"
    status = [TRAIN_LINE.match(line) for line in lines if line.startswith("[a3d] train: ") and "steps (" in line]
    assert all(status), [line for line in lines if "steps (" in line]
    assert [int(match.group(1)) for match in status] == [1, 2, 2, 3, 4, 4]  # each step, and again after each validation
    metrics = [match.group(2) for match in status]
    assert metrics[0] == "-" and metrics[2] != "-"  # the latest val mIoU once validated at step 2
    assert re.search(
        r"^\[a3d\] train: done, 4 steps in \d:\d\d:\d\d \(\d+\.\d\d steps/s\)$", result.output, re.MULTILINE
    )
    for split in ("test", "test_newview"):  # the evaluation after training is a phase of its own
        assert re.search(rf"^\[a3d\] evaluate {split}: started \(\d+ instances\)$", result.output, re.MULTILINE)
        assert re.search(rf"^\[a3d\] evaluate {split}: done, \d+ instances in ", result.output, re.MULTILINE)


def test_the_interval_comes_from_the_environment(tmp_path, monkeypatch):
    result = _pretrain(tmp_path, monkeypatch, env={"A3D_PROGRESS_EVERY": "3600"})
    assert result.exit_code == 0, result.output
    train_lines = [line for line in result.output.splitlines() if line.startswith("[a3d] train:")]
    # no status line within an hour
    assert len(train_lines) == 2 and "started" in train_lines[0] and "done" in train_lines[1]


def test_prepare_shapenet_reports_its_phases(tmp_path):
    result = runner.invoke(
        app,
        [
            "--progress-every",
            "0",
            "prepare",
            "shapenet",
            "--objects-per-category",
            "1",
            "--views",
            "2",
            "--image-size",
            "16",
            "--out",
            str(tmp_path / "data"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"^\[a3d\] rendering views: started \(\d+ views\)$", result.output, re.MULTILINE)
    assert re.search(r"^\[a3d\] rendering views: \d+/\d+ views \(\d+%\) \| ", result.output, re.MULTILINE)
    assert re.search(r"^\[a3d\] occluding views: done, \d+ views in ", result.output, re.MULTILINE)


def test_on_a_terminal_each_phase_has_a_bar_with_its_values_and_time_left():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    with ProgressDisplay(console, transient=False) as display:
        display.start("1/7 prepare shapenet: render the pretraining views", 10, unit="view")
        display.update(10)
        display.start("2/7 pretrain: train", 600)
        display.update(150, loss="0.4123")
    shown = screen.getvalue()
    assert re.search(r"1/7 prepare shapenet: render the pretraining views ━+ 10/10 ", shown)
    assert re.search(r"2/7 pretrain: train +━+ 600/600 loss 0\.4123 \d:\d\d:\d\d left \d:\d\d:\d\d", shown)
    assert "[a3d]" not in shown  # no plain lines on a terminal
