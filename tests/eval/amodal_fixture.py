"""A tiny canonical amodal dataset and predictions for it, built by the tests themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from a3d_core.data.canonical import AmodalSplit, amodal_annotation, encode_mask, write_dataset

HEIGHT, WIDTH = 12, 16


def rectangle(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def tiny_split() -> AmodalSplit:
    """Two images, two categories; instance 1 is 50% occluded, instance 2 not, instance 3 25%.

    Image 1: car (id 1) amodal 4x4 at (2, 2), visible its left half; chair (id 2) 3x3 at (6, 10),
    fully visible. Image 2: car 4x4 at (0, 0), visible all but one column (occlusion 0.25).
    """
    car = rectangle(2, 2, 6, 6)
    chair = rectangle(6, 10, 9, 13)
    car2 = rectangle(0, 0, 4, 4)
    annotations = [
        amodal_annotation(1, 1, 1, car, rectangle(2, 2, 6, 4)),
        amodal_annotation(2, 1, 2, chair, chair),
        amodal_annotation(3, 2, 1, car2, rectangle(0, 0, 4, 3)),
    ]
    images = [{"id": i, "file_name": f"{i}.png", "height": HEIGHT, "width": WIDTH} for i in (1, 2)]
    categories = [{"id": 1, "name": "car"}, {"id": 2, "name": "chair"}]
    return AmodalSplit(images, annotations, categories)


def prediction(
    image_id: int, category_id: int, score: float, amodal: np.ndarray, visible: np.ndarray | None = None
) -> dict[str, Any]:
    entry = {"image_id": image_id, "category_id": category_id, "score": score, "segmentation": encode_mask(amodal)}
    if visible is not None:
        entry["visible_mask"] = encode_mask(visible)
    return entry


def write_tiny_dataset(root: Path) -> Path:
    write_dataset(root / "tiny", "tiny", "tests", {"val": tiny_split()})
    return root / "tiny"
