"""Mask IoU for stage-2 predictions: per instance, per category, and their means.

The ShapeNet protocol of the paper (Table 1) reports the IoU of each category (the mean over
its instances) and the mean of those category IoUs (mIoU). A mask is binarised at 0.5 before
the IoU is taken, as C2F-Seg's mIoU does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from a3d_core.errors import InputError


def _as_instance_masks(masks: torch.Tensor, name: str) -> torch.Tensor:
    """Accept ``(B, H, W)`` or ``(B, 1, H, W)`` and return ``(B, H, W)``."""
    if masks.dim() == 4 and masks.shape[1] == 1:
        return masks[:, 0]
    if masks.dim() != 3:
        raise InputError(f"{name}: expected a (B, H, W) or (B, 1, H, W) mask tensor, got shape {tuple(masks.shape)}")
    return masks


def paired_mask_iou(prediction: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """IoU of each predicted mask with its own target mask: ``B`` pairs, ``B`` IoUs.

    (:func:`~a3d_core.eval.iou.pairwise_mask_iou` compares every detection with every ground truth.)

    Args:
        prediction: ``(B, H, W)`` or ``(B, 1, H, W)`` probabilities (or binary masks).
        target: the ground truth, same shape convention, values in ``{0, 1}`` (or probabilities).
        threshold: both tensors are binarised with ``> threshold``.

    Returns:
        ``(B,)`` float32 IoUs. Two empty masks agree perfectly and score 1.
    """
    prediction = _as_instance_masks(prediction, "prediction")
    target = _as_instance_masks(target, "target")
    if prediction.shape != target.shape:
        raise InputError(
            f"paired_mask_iou: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape"
        )
    predicted = prediction > threshold
    truth = target > threshold
    intersection = (predicted & truth).flatten(1).sum(1).float()
    union = (predicted | truth).flatten(1).sum(1).float()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))


@dataclass(frozen=True)
class IoUSummary:
    """IoUs of one method on one split.

    Attributes:
        miou: mean over categories of the per-category mean IoU (the paper's Table 1 mIoU).
        instance_miou: mean over all instances.
        per_category: category name -> mean IoU of its instances (categories with instances only).
        counts: category name -> number of instances.
    """

    miou: float
    instance_miou: float
    per_category: dict[str, float]
    counts: dict[str, int]

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat ``{"<prefix>miou": ..., "<prefix>instance_miou": ..., "<prefix>miou/<category>": ...}``."""
        metrics = {f"{prefix}miou": self.miou, f"{prefix}instance_miou": self.instance_miou}
        metrics.update({f"{prefix}miou/{name}": value for name, value in self.per_category.items()})
        return metrics


@dataclass
class IoUByCategory:
    """Accumulates instance IoUs by category; :meth:`summary` gives an :class:`IoUSummary`."""

    category_names: list[str]
    _sums: torch.Tensor = field(init=False, repr=False)
    _counts: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.category_names:
            raise ValueError("IoUByCategory needs at least one category name")
        self._sums = torch.zeros(len(self.category_names), dtype=torch.float64)
        self._counts = torch.zeros(len(self.category_names), dtype=torch.int64)

    def update(self, ious: torch.Tensor, categories: torch.Tensor) -> None:
        """Add ``(B,)`` IoUs of instances whose category indices are ``(B,)``."""
        categories = categories.reshape(-1).to("cpu", torch.int64)
        ious = ious.reshape(-1).to("cpu", torch.float64)
        if categories.numel() != ious.numel():
            raise InputError(f"IoUByCategory: {ious.numel()} IoUs but {categories.numel()} categories")
        if categories.numel() and (categories.min() < 0 or categories.max() >= len(self.category_names)):
            raise InputError(
                f"IoUByCategory: category index out of range 0..{len(self.category_names) - 1}: {categories.tolist()}"
            )
        self._sums.index_add_(0, categories, ious)
        self._counts.index_add_(0, categories, torch.ones_like(categories))

    def summary(self) -> IoUSummary:
        """The per-category and overall means; raises :class:`InputError` if nothing was added."""
        total = int(self._counts.sum())
        if total == 0:
            raise InputError("IoUByCategory: no instances were evaluated")
        present = self._counts > 0
        means = self._sums[present] / self._counts[present]
        names = [name for name, keep in zip(self.category_names, present.tolist()) if keep]
        return IoUSummary(
            miou=float(means.mean()),
            instance_miou=float(self._sums.sum() / total),
            per_category={name: float(value) for name, value in zip(names, means)},
            counts={name: int(count) for name, count in zip(names, self._counts[present])},
        )
