"""Horizontal-flip augmentation for single-object views, the same for every model compared.

A left-right flip of a view at azimuth ``a`` is a view of the mirrored object at ``-a``
(:mod:`a3d_core.data.viewpoints`), so flipping teaches a 2D model the mirror images of its
training views, and nothing a mirror-closed held-out wedge holds. The flip is drawn per OBJECT
and epoch, from ``(seed, epoch, object index)``: all views of an object are flipped together, so
cross-view pairs (paper 3.7) stay views of one (mirrored) object, and a resumed run flips as the
uninterrupted one did.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from a3d_core.data.viewpoints import mirror_view
from a3d_core.train.distributed import set_dataset_epoch

FLIPPED_IMAGES = ("rgb", "visible", "amodal")
FLIPPED_OPTIONAL_IMAGES = ("occluder",)


def flip_view(sample: dict[str, Any]) -> dict[str, Any]:
    """``sample`` with its images ``(C, S, S)`` (and its ``occluder`` ``(1, S, S)`` if it has one)
    flipped left-right, its ``view_id`` mirrored and its ``azimuth`` (degrees) negated: a view of
    the mirrored object."""
    flipped = dict(sample)
    for key in FLIPPED_IMAGES + tuple(key for key in FLIPPED_OPTIONAL_IMAGES if key in sample):
        flipped[key] = torch.flip(sample[key], dims=(-1,))
    if "view_id" in sample:
        flipped["view_id"] = torch.as_tensor(mirror_view(int(sample["view_id"])), dtype=torch.int64)
    if "azimuth" in sample:
        flipped["azimuth"] = -sample["azimuth"]
    return flipped


class HorizontalFlips(Dataset):
    """``dataset`` (items with ``rgb``, ``visible``, ``amodal`` ``(C, S, S)``; an ``object_index``
    array over items) with each object's views flipped left-right with ``probability`` per epoch.

    Attributes of the wrapped dataset (``categories``, ``object_index``, ...) are read through.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, probability: float = 0.5) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"flip probability must be in [0, 1], got {probability}")
        if getattr(dataset, "object_index", None) is None:
            raise ValueError(f"{type(dataset).__name__}: flips are drawn per object and need an object_index array")
        self.dataset = dataset
        self.seed = seed
        self.probability = probability
        self.epoch = 0
        self._object_index = np.asarray(dataset.object_index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        set_dataset_epoch(self.dataset, epoch)

    def flipped(self, index: int) -> bool:
        """Whether item ``index`` is flipped in the current epoch (the same for all views of its object)."""
        obj = int(self._object_index[index])
        return bool(np.random.default_rng([self.seed, self.epoch, obj, 17]).random() < self.probability)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.dataset[index]
        return flip_view(sample) if self.flipped(index) else sample

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)
