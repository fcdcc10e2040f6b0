"""`a3d finetune`: Fine-tune both stages on an amodal dataset, transferring categories by name (paper 3.7)."""

from a3d_cli.common import not_built


def finetune() -> None:
    """Fine-tune both stages on an amodal dataset, transferring categories by name (paper 3.7)."""
    not_built("finetune", 5)
