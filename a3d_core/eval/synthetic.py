"""Generated COCO ground truth and detections that exercise every rule of the COCO protocol.

Used by the oracle tests and ``benchmarks/bm_eval.py``: crowd regions, images without ground
truth, images without detections, more than 100 detections in an image, tied scores (scores are
rounded to a few values), tiny (1 pixel) and huge (whole-image) objects, polygon and RLE masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from a3d_core.boxes import mask_bbox
from a3d_core.data.canonical import encode_mask


@dataclass(frozen=True)
class SyntheticCocoSettings:
    """Sizes and rates of a generated evaluation.

    Attributes:
        images: number of images. categories: number of categories.
        height, width: image size range ``(low, high)`` in pixels, inclusive.
        max_objects: most ground-truth objects per image.
        detections_per_image: ``(low, high)`` detections per image (``high > 100`` exercises
            the detection cap).
        crowd_rate, empty_gt_rate, empty_det_rate: fractions of crowd annotations, images
            without ground truth and images without detections.
        score_levels: scores are rounded to this many levels (creates ties); 0 keeps them.
        polygon_rate: fraction of ground truth given as rectangle polygons instead of RLE.
        with_boxes: add a ``bbox`` to every detection (then COCO takes detection areas from boxes).
        ragged: detections near a ground truth get 2% of their box's pixels flipped.
    """

    images: int = 20
    categories: int = 3
    height: tuple[int, int] = (24, 48)
    width: tuple[int, int] = (24, 48)
    max_objects: int = 6
    detections_per_image: tuple[int, int] = (0, 30)
    crowd_rate: float = 0.1
    empty_gt_rate: float = 0.15
    empty_det_rate: float = 0.15
    score_levels: int = 5
    polygon_rate: float = 0.2
    with_boxes: bool = False
    ragged: bool = False

    def __post_init__(self) -> None:
        if self.images < 1 or self.categories < 1:
            raise ValueError("images and categories must be at least 1")
        for name in ("height", "width", "detections_per_image"):
            low, high = getattr(self, name)
            if low > high or low < (1 if name != "detections_per_image" else 0):
                raise ValueError(f"{name} must be a range (low, high) with 0 < low <= high, got {(low, high)}")
        for name in ("crowd_rate", "empty_gt_rate", "empty_det_rate", "polygon_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")


def _random_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A rectangle or ellipse of a random size class: tiny, ordinary or whole-image."""
    mask = np.zeros((height, width), np.uint8)
    size_class = rng.random()
    if size_class < 0.1:
        mask[rng.integers(height), rng.integers(width)] = 1
        return mask
    if size_class > 0.93:
        mask[rng.integers(0, 2) :, rng.integers(0, 2) :] = 1
        return mask
    h, w = rng.integers(2, height + 1), rng.integers(2, width + 1)
    y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    if rng.random() < 0.5:
        mask[y : y + h, x : x + w] = 1
    else:
        yy, xx = np.mgrid[:height, :width]
        mask[((yy - y - h / 2) / (h / 2)) ** 2 + ((xx - x - w / 2) / (w / 2)) ** 2 <= 1] = 1
    return mask


def _jitter(rng: np.random.Generator, mask: np.ndarray, ragged: bool) -> np.ndarray:
    """The mask shifted by a few pixels and grown or shrunk by one pixel along one axis, like a
    network's thresholded output; ``ragged`` also flips 2% of the pixels inside its box (many
    short runs: the worst case for run-length IoU)."""
    shifted = np.roll(mask, (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(0, 1))
    neighbour = np.roll(shifted, 1, axis=int(rng.integers(2)))
    shifted = shifted | neighbour if rng.random() < 0.5 else shifted & neighbour
    ys, xs = np.nonzero(shifted)
    if ragged and len(ys):
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        shifted[box] ^= (rng.random(shifted[box].shape) < 0.02).astype(np.uint8)
    return shifted.astype(np.uint8)


def synthetic_coco(settings: SyntheticCocoSettings, seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A COCO ground-truth dict and a results list (``image_id, category_id, score, segmentation``)."""
    rng = np.random.default_rng(seed)
    categories = [{"id": 3 * k + 1, "name": f"class{k}"} for k in range(settings.categories)]
    images, annotations, results = [], [], []
    for index in range(settings.images):
        image_id = 5 * index + 2
        height = int(rng.integers(settings.height[0], settings.height[1] + 1))
        width = int(rng.integers(settings.width[0], settings.width[1] + 1))
        images.append({"id": image_id, "height": height, "width": width, "file_name": f"{image_id}.png"})
        objects = (
            [] if rng.random() < settings.empty_gt_rate else list(range(int(rng.integers(1, settings.max_objects + 1))))
        )
        gt_masks = []
        for _ in objects:
            mask = _random_mask(rng, height, width)
            category = categories[int(rng.integers(settings.categories))]["id"]
            crowd = int(rng.random() < settings.crowd_rate)
            box = mask_bbox(mask)
            if rng.random() < settings.polygon_rate and not crowd:
                x, y, w, h = box
                segmentation: Any = [[x, y, x, y + h, x + w, y + h, x + w, y]]
                area = float(w * h)
            else:
                segmentation = encode_mask(mask)
                area = float(mask.sum())
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "segmentation": segmentation,
                    "area": area,
                    "bbox": box,
                    "iscrowd": crowd,
                }
            )
            gt_masks.append((mask, category))
        if rng.random() < settings.empty_det_rate:
            continue
        count = int(rng.integers(settings.detections_per_image[0], settings.detections_per_image[1] + 1))
        for _ in range(count):
            if gt_masks and rng.random() < 0.6:
                base, category = gt_masks[int(rng.integers(len(gt_masks)))]
                mask = _jitter(rng, base, settings.ragged)
                if rng.random() < 0.15:
                    category = categories[int(rng.integers(settings.categories))]["id"]
            else:
                mask = _random_mask(rng, height, width)
                category = categories[int(rng.integers(settings.categories))]["id"]
            score = float(rng.random())
            if settings.score_levels:
                score = round(score * settings.score_levels) / settings.score_levels
            result = {"image_id": image_id, "category_id": category, "score": score, "segmentation": encode_mask(mask)}
            if settings.with_boxes:
                result["bbox"] = mask_bbox(mask)
            results.append(result)
    return {"images": images, "annotations": annotations, "categories": categories}, results
