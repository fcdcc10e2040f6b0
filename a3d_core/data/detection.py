"""A torch ``Dataset`` of whole images with per-instance amodal targets, for the two-stage model.

Each item is ``(image, target)`` in torchvision's detection convention:

``image``
    float32 ``(3, H, W)`` in ``[0, 1]``.
``target``
    ``"boxes"``          float32 ``(N, 4)``: AMODAL boxes ``(x0, y0, x1, y1)`` in pixels
                         (continuous corners: a box covering pixel columns 2..5 is ``x0=2, x1=6``);
    ``"labels"``         int64 ``(N,)``: contiguous labels ``1..C`` (0 is the background);
    ``"masks"``          uint8 ``(N, H, W)``: VISIBLE masks;
    ``"amodal_masks"``   uint8 ``(N, H, W)``: AMODAL masks;
    ``"occlusion_rate"`` float32 ``(N,)``: ``1 - |visible| / |amodal|``;
    ``"iscrowd"``        int64 ``(N,)``;
    ``"image_id"``       int, the COCO image id.

The first three keys are exactly what torchvision's Mask R-CNN trains on, so stage 1 learns
amodal boxes and visible masks (paper 3.2) from this target as it is; the others are for stage
2 and evaluation. Instances whose amodal box is thinner than one pixel cannot be learnt by a
box regressor and are left out, as are crowd regions unless ``skip_crowd=False``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from a3d_core.data.canonical import AmodalDataset, AmodalSplit, decode_segmentation, read_dataset
from a3d_core.errors import InputError
from a3d_core.io.images import read_image

MIN_BOX_SIDE = 1.0
"""Amodal boxes thinner than this (pixels) are dropped: they have no area to regress."""


@dataclass(frozen=True)
class CategoryMapping:
    """COCO category ids <-> contiguous model labels ``1..C`` (label 0 is the background).

    Labels follow the category ids in increasing order, so the mapping of a dataset does not
    depend on the order its JSON lists categories in.
    """

    category_ids: tuple[int, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.category_ids) != len(self.names):
            raise ValueError(f"{len(self.category_ids)} category ids but {len(self.names)} names")
        if list(self.category_ids) != sorted(set(self.category_ids)):
            raise ValueError(f"category ids must be unique and increasing, got {self.category_ids}")

    @classmethod
    def from_categories(cls, categories: Sequence[Mapping[str, Any]]) -> "CategoryMapping":
        """From a COCO ``categories`` list (``id``, ``name``)."""
        by_id: dict[int, str] = {}
        for category in categories:
            category_id = int(category["id"])
            if category_id in by_id:
                raise InputError(f"category id {category_id} is listed twice")
            by_id[category_id] = str(category["name"])
        ids = tuple(sorted(by_id))
        return cls(ids, tuple(by_id[i] for i in ids))

    @property
    def num_classes(self) -> int:
        """Number of object categories ``C`` (the background not counted)."""
        return len(self.category_ids)

    def label(self, category_id: int) -> int:
        """Model label ``1..C`` of a COCO category id."""
        try:
            return self.category_ids.index(int(category_id)) + 1
        except ValueError:
            raise InputError(f"category id {category_id} is not among the dataset's categories") from None

    def category_id(self, label: int) -> int:
        """COCO category id of a model label ``1..C``."""
        return self.category_ids[self._index(label)]

    def name(self, label: int) -> str:
        """Category name of a model label ``1..C``."""
        return self.names[self._index(label)]

    def _index(self, label: int) -> int:
        if not 1 <= int(label) <= self.num_classes:
            raise ValueError(f"label {label} is outside 1..{self.num_classes}")
        return int(label) - 1


def instance_targets(
    annotations: Sequence[Mapping[str, Any]],
    height: int,
    width: int,
    label_of: Callable[[int], int],
    skip_crowd: bool = True,
) -> dict[str, torch.Tensor]:
    """Canonical annotations of one image -> the target tensors listed in the module docstring.

    Args:
        annotations: canonical annotations (``bbox`` amodal ``[x, y, w, h]``, ``segmentation``
            amodal mask, ``visible_mask``, ``category_id``, ``iscrowd``, ``occlusion_rate``;
            a missing ``occlusion_rate`` is computed from the masks).
        height, width: the image size the masks are decoded at.
        label_of: maps a COCO category id to a model label ``1..C``.
        skip_crowd: leave out ``iscrowd`` regions (training never learns from them).

    Returns:
        ``boxes`` ``(N, 4)``, ``labels`` ``(N,)``, ``masks`` ``(N, H, W)`` (visible),
        ``amodal_masks`` ``(N, H, W)``, ``occlusion_rate`` ``(N,)``, ``iscrowd`` ``(N,)``.
    """
    boxes, labels, visible, amodal, occlusion, crowd = [], [], [], [], [], []
    for annotation in annotations:
        where = f"annotation {annotation.get('id')}"
        is_crowd = int(annotation.get("iscrowd", 0))
        if skip_crowd and is_crowd:
            continue
        try:
            x, y, w, h = (float(v) for v in annotation["bbox"])
            amodal_mask = decode_segmentation(annotation["segmentation"], height, width)
            visible_mask = decode_segmentation(annotation["visible_mask"], height, width)
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"{where}: {error}") from None
        if not all(np.isfinite([x, y, w, h])):
            raise InputError(f"{where}: non-finite bbox {annotation['bbox']}")
        if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
            continue
        boxes.append([x, y, x + w, y + h])
        labels.append(label_of(int(annotation["category_id"])))
        visible.append(visible_mask)
        amodal.append(amodal_mask)
        stored_rate = annotation.get("occlusion_rate")
        occlusion.append(float(stored_rate) if stored_rate is not None else _occlusion_rate(visible_mask, amodal_mask))
        crowd.append(is_crowd)
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "masks": _stack_masks(visible, height, width),
        "amodal_masks": _stack_masks(amodal, height, width),
        "occlusion_rate": torch.tensor(occlusion, dtype=torch.float32),
        "iscrowd": torch.tensor(crowd, dtype=torch.int64),
    }


def stage1_targets(
    annotations: Sequence[Mapping[str, Any]],
    height: int,
    width: int,
    label_of: Callable[[int], int],
) -> dict[str, torch.Tensor]:
    """Canonical annotations of one image -> a stage-1 training target (crowd regions left out).

    Returns:
        ``boxes`` float ``(N, 4)``: the AMODAL boxes, xyxy; ``labels`` int64 ``(N,)`` in
        ``1..C`` (``label_of`` maps category ids); ``masks`` uint8 ``(N, H, W)``: the VISIBLE
        masks.
    """
    targets = instance_targets(annotations, height, width, label_of, skip_crowd=True)
    return {"boxes": targets["boxes"], "labels": targets["labels"], "masks": targets["masks"]}


def _occlusion_rate(visible: np.ndarray, amodal: np.ndarray) -> float:
    amodal_area = int(amodal.sum())
    return 1.0 - int((visible & amodal).sum()) / amodal_area if amodal_area else 0.0


def _stack_masks(masks: list[np.ndarray], height: int, width: int) -> torch.Tensor:
    if not masks:
        return torch.zeros((0, height, width), dtype=torch.uint8)
    return torch.from_numpy(np.stack(masks).astype(np.uint8))


class AmodalDetectionDataset(Dataset):
    """Images of one split of a canonical dataset with their amodal targets.

    Args:
        dataset: an opened canonical dataset, or its folder.
        split: the split name (``train``, ``val``, ...).
        skip_crowd: leave crowd regions out of the targets (for training).

    Attributes:
        categories: the :class:`CategoryMapping` (labels ``1..C``, names).
        images: the split's COCO image records, in the order items are served.
    """

    def __init__(self, dataset: AmodalDataset | str | os.PathLike, split: str, skip_crowd: bool = True) -> None:
        self.dataset = dataset if isinstance(dataset, AmodalDataset) else read_dataset(dataset)
        self.split_name = split
        self.split: AmodalSplit = self.dataset.load_split(split)
        self.skip_crowd = skip_crowd
        self.categories = CategoryMapping.from_categories(self.split.categories)
        self.images = list(self.split.images)
        self._annotations: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for annotation in self.split.annotations:
            self._annotations[int(annotation["image_id"])].append(annotation)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        record = self.images[index]
        path = self.dataset.image_path(record)
        pixels = read_image(path)
        height, width = int(record["height"]), int(record["width"])
        if pixels.shape[:2] != (height, width):
            raise InputError(
                f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]} but {self.split_name}.json says {width}x{height}"
            )
        try:
            target: dict[str, Any] = instance_targets(
                self._annotations[int(record["id"])], height, width, self.categories.label, self.skip_crowd
            )
        except InputError as error:
            raise InputError(f"{self.dataset.split_path(self.split_name)}: image {record['id']}: {error}") from None
        target["image_id"] = int(record["id"])
        image = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255.0)
        return image, target


def collate_detection(
    batch: Sequence[tuple[torch.Tensor, dict[str, Any]]],
) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """``[(image, target), ...]`` -> ``([image, ...], [target, ...])``: images differ in size, so
    they stay a list, as torchvision's detection models expect."""
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    return images, targets
