"""`a3d evaluate`: Evaluate amodal predictions: COCO AP, mIoU, occluded AP (paper 4.2)."""

from a3d_cli.common import not_built


def evaluate() -> None:
    """Evaluate amodal predictions: COCO AP, mIoU, occluded AP (paper 4.2)."""
    not_built("evaluate", 6)
