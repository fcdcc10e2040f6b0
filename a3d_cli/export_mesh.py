"""`a3d export-mesh`: Export the reconstructed mesh of an instance (OBJ, PLY, masks, turntable GIF)."""

from a3d_cli.common import not_built


def export_mesh() -> None:
    """Export the reconstructed mesh of an instance (OBJ, PLY, masks, turntable GIF)."""
    not_built("export-mesh", 4)
