"""`a3d predict`: Predict amodal and visible masks for images."""

from a3d_cli.common import not_built


def predict() -> None:
    """Predict amodal and visible masks for images."""
    not_built("predict", 5)
