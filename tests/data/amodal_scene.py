"""A hand-made two-object canonical dataset for the stage-1 / detection tests.

One 96 x 128 image: object A (category 7 "box") is the square rows 20..59, columns 10..49;
object B (category 3 "cup") is the rectangle rows 40..79, columns 30..89 and lies in front of
A, hiding A's rows 40..59 x columns 30..49 (400 of A's 1600 pixels: occlusion rate 0.25).
A crowd region (category 3) covers rows 0..9, columns 100..119. Categories are listed with id 7
first, so a mapping that followed the JSON order instead of the ids would show.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from a3d_core.data.canonical import AmodalDataset, AmodalSplit, amodal_annotation, write_dataset

HEIGHT, WIDTH = 96, 128
BOX_A = (10.0, 20.0, 50.0, 60.0)  # amodal xyxy, continuous corners
BOX_B = (30.0, 40.0, 90.0, 80.0)


def scene_masks() -> dict[str, np.ndarray]:
    """Amodal and visible masks ``(H, W)`` bool of A and B, and the crowd region."""
    amodal_a = np.zeros((HEIGHT, WIDTH), bool)
    amodal_a[20:60, 10:50] = True
    amodal_b = np.zeros((HEIGHT, WIDTH), bool)
    amodal_b[40:80, 30:90] = True
    crowd = np.zeros((HEIGHT, WIDTH), bool)
    crowd[0:10, 100:120] = True
    return {"amodal_a": amodal_a, "visible_a": amodal_a & ~amodal_b, "amodal_b": amodal_b, "crowd": crowd}


def scene_image() -> np.ndarray:
    """``(H, W, 3)`` uint8: gray background, A red where visible, B blue."""
    masks = scene_masks()
    image = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    image[masks["visible_a"]] = (220, 40, 40)
    image[masks["amodal_b"]] = (40, 40, 220)
    return image


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_scene_dataset(root: Path) -> AmodalDataset:
    """Write the dataset (split ``train``, image ``scene.png``) under ``root`` and open it."""
    masks = scene_masks()
    annotations = [
        amodal_annotation(1, 5, 7, masks["amodal_a"], masks["visible_a"]),
        amodal_annotation(2, 5, 3, masks["amodal_b"], masks["amodal_b"]),
        amodal_annotation(3, 5, 3, masks["crowd"], masks["crowd"], iscrowd=1),
    ]
    split = AmodalSplit(
        images=[{"id": 5, "file_name": "scene.png", "width": WIDTH, "height": HEIGHT}],
        annotations=annotations,
        categories=[{"id": 7, "name": "box"}, {"id": 3, "name": "cup"}],
    )
    return write_dataset(
        root,
        name="scene",
        source="test",
        splits={"train": split},
        write_images=[("scene.png", png_bytes(scene_image()))],
    )
