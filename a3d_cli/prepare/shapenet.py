"""``a3d prepare shapenet``: ShapeNet renders, mesh folders, or the built-in shape library."""

from a3d_cli.common import not_built
from a3d_cli.prepare import app


@app.command("shapenet", help="Build the ShapeNet-style single-object set (not built yet).")
def shapenet() -> None:
    not_built("prepare shapenet", 3)
