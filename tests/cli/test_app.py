"""The command line: the six commands exist, --version works, unbuilt ones exit 2."""

import subprocess
import sys

from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core import __version__

runner = CliRunner()


def test_help_lists_the_six_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("prepare", "pretrain", "finetune", "evaluate", "predict", "complete", "export-mesh"):
        assert command in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"a3d {__version__}"


def test_module_entry_point_runs():
    completed = subprocess.run([sys.executable, "-m", "a3d_cli", "--version"], capture_output=True, text=True)
    assert completed.returncode == 0 and __version__ in completed.stdout
