"""`a3d pretrain`: Pretrain the 3D shape prior (stage 2) on single-object data, unsupervised (paper 3.7)."""

from a3d_cli.common import not_built


def pretrain() -> None:
    """Pretrain the 3D shape prior (stage 2) on single-object data, unsupervised (paper 3.7)."""
    not_built("pretrain", 4)
