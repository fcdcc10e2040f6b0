"""Tiny multi-object canonical datasets and stage-2 checkpoints for the two-stage tests.

Every image is ``48 x 64``: a grey background with two axis-aligned objects, a red rectangle
(category id 4, "car") behind a blue ellipse (category id 9, "chair") that hides part of it, at
positions drawn from a seeded generator. Masks are exact by construction.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from a3d_core.data.canonical import AmodalDataset, AmodalSplit, amodal_annotation, write_dataset
from a3d_core.model.a3d import A3DSettings, build_a3d
from a3d_core.model.asm import ASMSettings, build_stage2
from a3d_core.model.stage1 import Stage1Settings

HEIGHT, WIDTH = 48, 64
CATEGORIES = [{"id": 9, "name": "chair"}, {"id": 4, "name": "car"}]


def scene(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]]:
    """One image ``(H, W, 3)`` uint8 and its instances ``(category id, amodal, visible)``."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    x0, y0 = int(rng.integers(4, 20)), int(rng.integers(4, 16))
    rectangle = (xs >= x0) & (xs < x0 + 24) & (ys >= y0) & (ys < y0 + 18)
    cx, cy = x0 + 24 + int(rng.integers(-6, 6)), y0 + 16 + int(rng.integers(-4, 4))
    ellipse = ((xs + 0.5 - cx) / 12.0) ** 2 + ((ys + 0.5 - cy) / 9.0) ** 2 <= 1.0
    image = np.full((HEIGHT, WIDTH, 3), 120, np.uint8)
    image[rectangle] = (210, 50, 40)
    image[ellipse] = (40, 60, 210)
    return image, [(4, rectangle, rectangle & ~ellipse), (9, ellipse, ellipse)]


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_tiny_scenes(root: Path, train_images: int = 4, val_images: int = 2, seed: int = 0) -> AmodalDataset:
    """A canonical dataset with ``train`` and ``val`` splits of tiny two-object scenes."""
    rng = np.random.default_rng(seed)
    splits, files = {}, []
    image_id, annotation_id = 1, 1
    for split_name, count in (("train", train_images), ("val", val_images)):
        images, annotations = [], []
        for _ in range(count):
            image, instances = scene(rng)
            name = f"{split_name}_{image_id:03d}.png"
            files.append((name, _png(image)))
            images.append({"id": image_id, "file_name": name, "width": WIDTH, "height": HEIGHT})
            for category_id, amodal, visible in instances:
                annotations.append(amodal_annotation(annotation_id, image_id, category_id, amodal, visible))
                annotation_id += 1
            image_id += 1
        splits[split_name] = AmodalSplit(images, annotations, list(CATEGORIES))
    return write_dataset(root, name="tiny-scenes", source="test", splits=splits, write_images=files)


def tiny_stage2_settings() -> ASMSettings:
    """The smallest stage 2 the tests use: 32 x 32 crops, a 42-vertex template, narrow encoders, the
    paper's three-layer edge refine (smaller than the default U-Net refine)."""
    encoder = {"channels": [8, 8, 16, 16, 16], "fc_dims": [32, 32, 32]}
    return ASMSettings(
        image_size=32,
        template_level=1,
        encoder=encoder,
        shape={"hidden_dim": 32},
        viewpoint={"encoder": encoder},
        refine={"hidden_channels": 8, "architecture": "edge"},
        renderer=None,
    )


def write_pretrain_checkpoint(
    path: Path, category_names: list[str], seed: int = 0, input_framing: float | None = None, **settings
) -> Path:
    """A stage-2 checkpoint as ``a3d pretrain`` writes one (model, model_config, category_names);
    ``settings``: more :class:`ASMSettings` fields to change."""
    torch.manual_seed(seed)
    model = build_stage2(
        "a3d", category_names, dataclasses.replace(tiny_stage2_settings(), input_framing=input_framing, **settings)
    )
    torch.save(
        {"model": model.state_dict(), "model_config": model.config(), "category_names": list(category_names)}, path
    )
    return path


def tiny_stage1_settings() -> Stage1Settings:
    """Stage 1 at the tiny images' scale: MobileNetV3-FPN, short side 48, few proposals."""
    return Stage1Settings(
        num_classes=1,
        backbone="mobilenet_v3-fpn",
        min_size=48,
        max_size=64,
        rpn_pre_nms_top_n_train=50,
        rpn_post_nms_top_n_train=20,
        rpn_pre_nms_top_n_test=50,
        rpn_post_nms_top_n_test=10,
        rpn_batch_size_per_image=32,
        box_batch_size_per_image=16,
        box_detections_per_img=4,
    )


def write_two_stage_checkpoint(path: Path, category_names: list[str], seed: int = 0) -> Path:
    """A (randomly initialised) two-stage checkpoint as ``a3d finetune`` writes one."""
    torch.manual_seed(seed)
    network = build_a3d(category_names, A3DSettings(stage1=tiny_stage1_settings(), stage2=tiny_stage2_settings()))
    torch.save(
        {"model": network.state_dict(), "model_config": network.config(), "category_names": list(category_names)}, path
    )
    return path
