"""``a3d prepare kins | kins2020 | d2sa | cocoa-cls | cocoa``: real amodal datasets."""

from a3d_cli.common import not_built
from a3d_cli.prepare import app

for _name in ("kins", "kins2020", "d2sa", "cocoa-cls", "cocoa"):

    @app.command(_name, help=f"Convert the {_name} layout (not built yet).")
    def _convert() -> None:
        not_built("prepare", 2)
