"""Tiny stand-ins that follow the stage-2 contracts (network and ShapeNet dataset), for fast tests.

ToyAmodalModel: train mode -> dict of scalar losses; eval mode -> {"amodal_mask": (B, S, S) probs}.
ToyAmodalDataset: items {"rgb", "visible", "amodal", "category", "object_index", "view_id",
"occlusion_rate"}, with ``categories`` and ``object_index``, like ShapeNetAmodalDataset.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ToyAmodalModel(nn.Module):
    """conv -> tanh -> dropout -> 1x1 conv over [rgb, visible], plus a per-pixel bias; mask logits."""

    def __init__(
        self,
        category_names: list[str],
        hidden: int = 4,
        dropout: float = 0.2,
        size: int = 8,
        nan_at_call: int | None = None,
        interrupt_at_call: int | None = None,
    ) -> None:
        super().__init__()
        self.category_names = list(category_names)
        self.hidden = hidden
        self.body = nn.Conv2d(4, hidden, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Conv2d(hidden, 1, 1)
        self.position = nn.Parameter(torch.zeros(size, size))
        self.calls = 0
        self.nan_at_call = nan_at_call
        self.interrupt_at_call = interrupt_at_call

    def config(self) -> dict:
        return {"kind": "toy", "hidden": self.hidden, "category_names": self.category_names}

    def logits(self, batch: dict) -> torch.Tensor:
        features = torch.cat([batch["rgb"], batch["visible"]], dim=1)
        return self.head(self.dropout(torch.tanh(self.body(features))))[:, 0] + self.position

    def forward(self, batch: dict) -> dict:
        logits = self.logits(batch)
        if not self.training:
            return {"amodal_mask": torch.sigmoid(logits)}
        self.calls += 1
        if self.interrupt_at_call is not None and self.calls == self.interrupt_at_call:
            raise KeyboardInterrupt
        mask = F.binary_cross_entropy_with_logits(logits, batch["amodal"][:, 0])
        regulariser = 0.01 * self.head.weight.pow(2).sum()
        if self.nan_at_call is not None and self.calls == self.nan_at_call:
            regulariser = regulariser * float("nan")
        return {"mask": mask, "weights": regulariser}


class ToyAmodalDataset(torch.utils.data.Dataset):
    """``objects`` objects x ``views`` views of random S x S instances; amodal = visible | a square."""

    def __init__(
        self,
        objects: int = 6,
        views: int = 2,
        size: int = 8,
        seed: int = 0,
        categories: tuple[str, ...] = ("cube", "ball"),
    ) -> None:
        generator = torch.Generator().manual_seed(seed)
        count = objects * views
        self.categories = list(categories)
        self.object_index = np.repeat(np.arange(objects), views)
        self.view_id = np.tile(np.arange(views), objects)
        self.rgb = torch.rand(count, 3, size, size, generator=generator)
        self.visible = (torch.rand(count, 1, size, size, generator=generator) > 0.5).float()
        self.amodal = self.visible.clone()
        self.amodal[:, :, : size // 2, : size // 2] = 1.0
        self.category = torch.as_tensor(self.object_index % len(self.categories), dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.rgb)

    def __getitem__(self, index: int) -> dict:
        visible_area = float(self.visible[index].sum())
        amodal_area = float(self.amodal[index].sum())
        return {
            "rgb": self.rgb[index],
            "visible": self.visible[index],
            "amodal": self.amodal[index],
            "category": self.category[index],
            "object_index": int(self.object_index[index]),
            "view_id": int(self.view_id[index]),
            "occlusion_rate": 1.0 - visible_area / amodal_area,
        }
