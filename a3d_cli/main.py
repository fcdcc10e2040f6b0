"""The ``a3d`` application:
``a3d demo | prepare | pretrain | finetune | evaluate | predict | complete | export-mesh``.
"""

from __future__ import annotations

import typer

from a3d_cli import complete, demo, evaluate, export_mesh, finetune, predict, pretrain, progress
from a3d_cli.prepare import app as prepare_app
from a3d_core import __version__

app = typer.Typer(
    name="a3d",
    help="Amodal instance segmentation guided by a 3D shape prior (A3D, Li et al., ECCV 2022).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"a3d {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
    ),
    progress_every: float = typer.Option(
        progress.DEFAULT_INTERVAL,
        "--progress-every",
        min=0.0,
        envvar=progress.INTERVAL_ENV,
        help="When the output is not a terminal (a log file, CI), print a progress line every this many seconds (0: at "
        "every step).",
    ),
) -> None:
    """Amodal instance segmentation guided by a 3D shape prior."""
    progress.set_interval(progress_every)


app.command("demo")(demo.demo)
app.add_typer(prepare_app, name="prepare")
app.command("pretrain")(pretrain.pretrain)
app.command("finetune")(finetune.finetune)
app.command("evaluate")(evaluate.evaluate)
app.command("predict")(predict.predict)
app.command("complete")(complete.complete)
app.command("export-mesh")(export_mesh.export_mesh)
