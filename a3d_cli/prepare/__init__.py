"""``a3d prepare``: convert a dataset into the canonical amodal format under the data root.

Each source has its own module that adds its command(s) to ``app``.
"""

import typer

app = typer.Typer(
    help="Convert a dataset (KINS, KINS 2020, D2SA, COCOA-cls, COCOA, ShapeNet, built-in data, modal COCO masks) "
    "into the canonical amodal format.",
    no_args_is_help=True,
)

from a3d_cli.prepare import modal, real, scenes, shapenet  # noqa: E402,F401  (modules register their commands)
