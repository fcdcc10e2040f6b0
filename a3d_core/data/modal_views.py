"""Views as Deocclusion sees them (Zhan et al., CVPR 2020; the paper's ref. 36): inputs made of
masks, and training pairs made of modal masks alone.

Deocclusion's PCNet-M never reads an amodal mask: it learns to complete an instance's modal mask
after another instance's mask, the eraser, has been placed over it, and at inference it is given
the instance's visible mask and the masks of what may hide it. Two wrappers make any view dataset
(items as :class:`~a3d_core.data.shapenet.ShapeNetAmodalDataset`'s, with its ``occluder``) read
that way, so that the Deocclusion recipe trains and is scored on the same views as every other
model (the viewpoint benchmark's ``Deocclusion`` row):

* :class:`MaskOnlyViews`, the input at test: the RGB becomes ``(visible, occluder, 0)``, the
  mask-only input of :mod:`a3d_core.data.prepare_modal` and of the ``deocclusion`` completer
  (:mod:`a3d_core.pipelines.completers`); the amodal target is kept, for scoring.
* :class:`DeocclusionPairs`, the training and validation data: each view's VISIBLE mask is taken
  as its modal mask, the one label Deocclusion has; an eraser drawn from the other views' visible
  masks is placed over it by :func:`~a3d_core.data.prepare_modal.build_pair` (the view's own
  occluder stays in front of the eraser, as a real neighbour does there); the target is the
  visible mask, the input what the eraser leaves, re-drawn every epoch as Deocclusion does.

Two more let a class-agnostic completer learn from several sources at once (Deocclusion's
PCNet-M is class-agnostic: one network for every category):

* :class:`ClassAgnosticViews`: every item of category 0, the one category
  :data:`~a3d_core.data.prepare_modal.CLASS_AGNOSTIC`;
* :class:`ConcatViews`: two view datasets one after the other (e.g. real modal pairs and the
  built-in library's views), their objects kept apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from a3d_core.data.occlusion import OcclusionGenerator
from a3d_core.data.prepare_modal import CLASS_AGNOSTIC, ModalPairSettings, build_pair


def _require_occluder(dataset: Dataset) -> None:
    if not getattr(dataset, "has_occluder", False):
        raise ValueError(
            f"{type(dataset).__name__}: mask-only views need the occluder mask of each view "
            "(shards written by an a3d prepare that stores it)"
        )


class _ViewsWrapper(Dataset):
    """Reads the wrapped dataset's attributes (``categories``, ``object_index``, ...) through."""

    views: Dataset

    def __len__(self) -> int:
        return len(self.views)

    def __getattr__(self, name: str) -> Any:
        if name == "views":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.views, name)


class MaskOnlyViews(_ViewsWrapper):
    """``views`` with each item's ``rgb`` ``(3, S, S)`` replaced by ``(visible, occluder, 0)``."""

    def __init__(self, views: Dataset) -> None:
        _require_occluder(views)
        self.views = views

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = dict(self.views[index])
        visible, occluder = item["visible"], item["occluder"]  # (1, S, S) each
        item["rgb"] = torch.cat([visible, occluder, torch.zeros_like(visible)])  # (3, S, S)
        return item


class DeocclusionPairs(_ViewsWrapper):
    """Deocclusion's training pairs from the visible masks of ``views`` (see the module docstring).

    Item ``i`` of epoch ``e`` is drawn from ``(seed, e, i)``; the eraser is in front with
    probability ``settings.eraser_front_prob`` (``always_front``: every time, as on val). Each item
    keeps the view's fields but ``rgb`` = ``(input, eraser, 0)``, ``visible`` = the input,
    ``amodal`` = the view's visible mask (the modal target), ``occluder`` = the eraser and
    ``occlusion_rate`` the erased fraction. A visible mask too small to erase at a rate in the
    settings' range (a few pixels) is served whole, with no eraser.
    """

    def __init__(
        self, views: Dataset, settings: ModalPairSettings | None = None, seed: int = 0, always_front: bool = False
    ) -> None:
        _require_occluder(views)
        self.views = views
        self.settings = settings or ModalPairSettings()
        self.seed = seed
        self.front_prob = 1.0 if always_front else self.settings.eraser_front_prob
        self.epoch = 0
        masks = [views[i]["visible"][0].numpy().astype(bool) for i in range(len(views))]  # each (S, S)
        blank = np.zeros((3, *masks[0].shape), np.float32) if masks else np.zeros((3, 1, 1), np.float32)
        self.generator = OcclusionGenerator(self.settings.occlusion, [(blank, mask) for mask in masks])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _erasable(self, pixels: int) -> bool:
        """Whether some whole number of a mask's ``pixels`` lies in the erased-rate range."""
        low, high = self.settings.occlusion.covered_pixel_range(pixels)
        return pixels > 0 and low <= high

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = dict(self.views[index])
        modal = item["visible"][0].numpy().astype(bool)  # (S, S)
        own_occluder = item["occluder"][0].numpy().astype(bool)  # (S, S)
        item["amodal"] = torch.from_numpy(modal.astype(np.float32))[None]  # (1, S, S): the modal target
        if not self._erasable(int(modal.sum())):
            item["rgb"] = torch.cat([item["amodal"], torch.zeros(2, *modal.shape)])  # (3, S, S): modal, 0, 0
            item["visible"] = item["amodal"]
            item["occluder"] = torch.zeros(1, *modal.shape)  # (1, S, S)
            item["occlusion_rate"] = torch.tensor(0.0)
            return item
        rng = np.random.default_rng([self.seed, self.epoch, index % len(self), 36])
        front = bool(rng.random() < self.front_prob)
        pair = build_pair(modal, own_occluder, self.generator, rng, front, exclude=[index % len(self)])
        item["rgb"] = torch.from_numpy(pair.rgb)  # (3, S, S): input, eraser, 0
        item["visible"] = torch.from_numpy(pair.visible.astype(np.float32))[None]  # (1, S, S)
        item["occluder"] = torch.from_numpy(pair.eraser.astype(np.float32))[None]  # (1, S, S)
        item["occlusion_rate"] = torch.tensor(pair.occlusion_rate, dtype=torch.float32)
        return item


class ClassAgnosticViews(_ViewsWrapper):
    """``views`` with one category, :data:`~a3d_core.data.prepare_modal.CLASS_AGNOSTIC`: every
    item's ``category`` is 0 (its other fields are kept)."""

    categories = [CLASS_AGNOSTIC]

    def __init__(self, views: Dataset) -> None:
        self.views = views

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {**self.views[index], "category": torch.tensor(0, dtype=torch.int64)}


METADATA = ("object_index", "view_id", "elevation", "azimuth")
"""The per-item arrays of a view dataset that evaluation groups by (:mod:`a3d_core.eval.instances`)."""


class ConcatViews(Dataset):
    """``first``'s items, then ``second``'s, with the categories of ``first`` (give both the same
    ones, e.g. both :class:`ClassAgnosticViews`).

    ``second``'s object indices are shifted past ``first``'s largest, in its items and in the
    ``object_index`` array, so that no object of one is taken for an object of the other (flips
    and cross-view pairs are drawn per object); :data:`METADATA` arrays are concatenated;
    ``has_occluder`` holds when both have the occluder.
    """

    def __init__(self, first: Dataset, second: Dataset) -> None:
        if list(first.categories) != list(second.categories):
            raise ValueError(
                f"concatenated views need the same categories, got {first.categories} and {second.categories}"
            )
        self.first, self.second = first, second
        self.categories = list(first.categories)
        self.has_occluder = bool(getattr(first, "has_occluder", False) and getattr(second, "has_occluder", False))
        first_objects = np.asarray(first.object_index, np.int64)
        self.offset = int(first_objects.max()) + 1 if len(first_objects) else 0
        for name in METADATA:
            setattr(self, name, np.concatenate([np.asarray(getattr(first, name)), np.asarray(getattr(second, name))]))
        self.object_index[len(first) :] += self.offset

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} views")
        index %= len(self)
        if index < len(self.first):
            return self.first[index]
        item = dict(self.second[index - len(self.first)])
        item["object_index"] = item["object_index"] + self.offset
        return item
