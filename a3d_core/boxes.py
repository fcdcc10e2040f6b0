"""Boxes and crops at boxes: what the data pipeline and the network share, knowing neither.

Single-object views are framed at their amodal boxes (:mod:`a3d_core.data.framing`), and the
network crops every instance at its amodal box between the stages (:mod:`a3d_core.model.a3d`),
with the same functions here.

Stage 2 sees each instance as ``A_i = [I_i^a, M_i^v]`` (paper 3.2-3.3): the image and the
visible mask cropped at the amodal box ``B_i^a`` and resampled to ``S x S``. Its amodal mask,
predicted in that crop, is pasted back into the full image at the same box.

Coordinates are continuous pixel corners: pixel ``(row y, column x)`` covers
``[x, x + 1) x [y, y + 1)`` and has its centre at ``(x + 0.5, y + 0.5)``; a box
``(x0, y0, x1, y1)`` that covers pixel columns 2..5 has ``x0 = 2, x1 = 6`` (the canonical
format's amodal ``[x, y, w, h]`` becomes ``(x, y, x + w, y + h)``).

- :func:`mask_bbox` (numpy, COCO ``[x, y, w, h]``), :func:`mask_boxes_or_zero` and
  :func:`mask_boxes_or_image` (torch, xyxy) are the tight boxes of masks; they differ only for an
  empty mask: a zero box (COCO's convention: :func:`mask_bbox`, :func:`mask_boxes_or_zero`) or the
  whole image (:func:`mask_boxes_or_image`, for framing).
- :func:`square_boxes` turns amodal boxes into the squares actually cropped: centred on the
  box, ``crop_scale`` times its longer side, so an object keeps its aspect ratio and every
  instance is framed alike, whatever its size (single-object pretraining views are framed the
  same way, :mod:`a3d_core.data.framing`, so that the shape prior meets the same framing).
- :func:`crop_images` / :func:`crop_masks` use ``torchvision.ops.roi_align`` with
  ``aligned=True`` (that convention): crop pixel ``j`` of ``S`` averages samples around
  ``x0 + (j + 0.5) * (x1 - x0) / S``; with ``sampling_ratio=-1`` it takes
  ``ceil((x1 - x0) / S)`` samples per crop pixel and side, so shrinking a large box averages
  rather than aliases. A crop of an integer box whose side is ``S`` is exactly the pixels.
- :func:`paste_masks` is the inverse: every image pixel whose centre lies inside the box takes
  the crop's value at that point by bilinear interpolation (as torchvision's
  ``paste_masks_in_image`` does), with the crop's border values extended to the box edges;
  pixels whose centre is outside the box are 0. Unlike torchvision's paste, the box is not
  rounded to integers and the crop is not padded with a zero border, so an all-ones crop pasted
  at an integer box fills exactly that box, and pasting a crop of an integer box of side ``S``
  gives back the pixels that were cropped.
- :func:`square_box` and :func:`crop_instance` do the same for one instance given as a COCO box
  (``a3d export-mesh``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import masks_to_boxes, roi_align

from a3d_core.errors import InputError

DEFAULT_CROP_SCALE = 1.1
"""An instance's crop side as a multiple of its amodal box's longer side: a small margin."""


def mask_bbox(mask: np.ndarray) -> list[float]:
    """Tight box ``[x, y, w, h]`` of a binary mask, in pixels (COCO's convention); zeros if empty."""
    mask = np.asarray(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(cols) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]


def square_boxes(boxes: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The squares ``(N, 4)`` xyxy centred on boxes ``(N, 4)`` xyxy, of side ``scale * max(w, h)``.

    They may reach past the image: crops read zeros there, and pasting clips to the image.
    """
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    half = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * (scale / 2)
    return torch.stack([centre_x - half, centre_y - half, centre_x + half, centre_y + half], dim=1)


def mask_boxes_or_zero(masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The tight boxes ``(N, 4)`` xyxy (pixel corners) of masks ``(N, H, W)`` (``> threshold`` counts),
    as pycocotools' ``toBbox`` measures them (``x1 - x0`` is the width in pixels).

    An empty mask gets the zero box ``(0, 0, 0, 0)``, as COCO gives it (for a COCO result's ``bbox``).
    Float32 on the masks' device.
    """
    inside = masks > threshold
    boxes = torch.zeros((len(masks), 4), dtype=torch.float32, device=masks.device)
    filled = inside.flatten(1).any(dim=1)
    if filled.any():
        corners = torch.tensor([0.0, 0.0, 1.0, 1.0], device=masks.device)
        boxes[filled] = masks_to_boxes(inside[filled]).float() + corners
    return boxes


def mask_boxes_or_image(masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The tight boxes of :func:`mask_boxes_or_zero`, except that an empty mask gets the whole image
    ``(0, 0, W, H)``: framing at such a box keeps the whole view (:mod:`a3d_core.data.framing`).

    masks ``(N, H, W)`` -> float32 ``(N, 4)`` xyxy on the masks' device.
    """
    height, width = masks.shape[-2:]
    boxes = mask_boxes_or_zero(masks, threshold)
    empty = ~(masks > threshold).flatten(1).any(dim=1)
    boxes[empty] = torch.tensor([0.0, 0.0, float(width), float(height)], device=boxes.device)
    return boxes


def crop_images(
    images: torch.Tensor | Sequence[torch.Tensor], boxes: Sequence[torch.Tensor], size: int
) -> torch.Tensor:
    """Crop every image at each of its boxes and resample to ``size x size``.

    Args:
        images: float ``(B, C, H, W)``, or a list of ``B`` float ``(C, H_b, W_b)`` of any sizes.
        boxes: ``B`` float tensors ``(N_b, 4)``, xyxy in the image's pixels.
        size: ``S``.

    Returns:
        ``(N_1 + ... + N_B, C, S, S)``, instances in the order of the images, then the boxes.
    """
    _check_size(size)
    if len(images) != len(boxes):
        raise ValueError(f"crop_images got {len(images)} images but {len(boxes)} box tensors")
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"crop_images expects (B, C, H, W) images, got {tuple(images.shape)}")
        return _roi_align(images, [b.to(images) for b in boxes], size)
    crops = [_roi_align(image[None], [box.to(image)], size) for image, box in zip(images, boxes)]
    if not crops:
        raise ValueError("crop_images got no images")
    return torch.cat(crops)


def crop_masks(masks: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop mask ``i`` at box ``i`` and resample to ``size x size`` (soft values in ``[0, 1]``).

    Args:
        masks: ``(N, H, W)`` binary or probabilities (any dtype), one full-image mask per box.
        boxes: float ``(N, 4)`` xyxy.
        size: ``S``.

    Returns:
        float ``(N, S, S)``.
    """
    _check_size(size)
    if masks.ndim != 3 or boxes.shape != (masks.shape[0], 4):
        raise ValueError(
            f"crop_masks expects (N, H, W) masks and (N, 4) boxes, got {tuple(masks.shape)} and {tuple(boxes.shape)}"
        )
    dtype = boxes.dtype if boxes.is_floating_point() else torch.float32
    masks = masks.to(dtype)
    index = torch.arange(len(boxes), dtype=dtype, device=boxes.device)[:, None]
    rois = torch.cat([index, boxes.to(dtype)], dim=1)
    return roi_align(masks[:, None], rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)[:, 0]


def _roi_align(images: torch.Tensor, boxes: list[torch.Tensor], size: int) -> torch.Tensor:
    return roi_align(images, boxes, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def _check_size(size: int) -> None:
    if size < 1:
        raise ValueError(f"crop size must be at least 1, got {size}")


def paste_masks(crops: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Paste ``S x S`` crop masks into full-image masks at their boxes (see the module docstring).

    Differentiable in ``crops``.

    Args:
        crops: float ``(N, S, S)`` (probabilities or logits: values are interpolated as they are).
        boxes: float ``(N, 4)`` xyxy in the full image's pixels.
        image_size: ``(H, W)``.

    Returns:
        ``(N, H, W)`` of the crops' dtype; 0 wherever a pixel centre is outside the box.
    """
    if crops.ndim != 3 or boxes.shape != (crops.shape[0], 4):
        raise ValueError(
            f"paste_masks expects (N, S, S) crops and (N, 4) boxes, got {tuple(crops.shape)} and {tuple(boxes.shape)}"
        )
    height, width = int(image_size[0]), int(image_size[1])
    dtype = crops.dtype if crops.is_floating_point() else torch.float32
    pasted = torch.zeros((len(crops), height, width), dtype=dtype, device=crops.device)
    for index, (crop, box) in enumerate(zip(crops.to(dtype), boxes.tolist())):
        x0, y0, x1, y1 = box
        if not (x1 > x0 and y1 > y0):
            continue
        columns = _pixels_inside(x0, x1, width)
        rows = _pixels_inside(y0, y1, height)
        if columns is None or rows is None:
            continue
        # Pixel centres -> grid_sample's normalised crop coordinates (-1 and 1 are the crop's
        # outer edges, align_corners=False), i.e. the box edges.
        grid_x = (torch.arange(*columns, dtype=dtype, device=crops.device) + 0.5 - x0) * (2.0 / (x1 - x0)) - 1.0
        grid_y = (torch.arange(*rows, dtype=dtype, device=crops.device) + 0.5 - y0) * (2.0 / (y1 - y0)) - 1.0
        grid = torch.stack(torch.meshgrid(grid_x, grid_y, indexing="xy"), dim=-1)[None]
        region = F.grid_sample(crop[None, None], grid, mode="bilinear", padding_mode="border", align_corners=False)
        pasted[index, rows[0] : rows[1], columns[0] : columns[1]] = region[0, 0]
    return pasted


def _pixels_inside(start: float, stop: float, limit: int) -> tuple[int, int] | None:
    """The pixel indices ``[first, last)`` whose centres ``i + 0.5`` lie in ``[start, stop)``,
    clipped to ``[0, limit)``; ``None`` when there are none."""
    first = max(math.ceil(start - 0.5), 0)
    last = min(math.ceil(stop - 0.5), limit)
    return (first, last) if last > first else None


def jitter_boxes(
    boxes: torch.Tensor,
    image_size: tuple[int, int],
    max_shift: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Randomly move each box side, to train stage 2 on ground-truth boxes that look like
    stage-1 predictions (issue: "stage 2 trains on ground-truth boxes ... with jitter").

    Each of ``x0, x1`` moves by ``u * max_shift * width`` and each of ``y0, y1`` by
    ``u * max_shift * height``, ``u ~ Uniform(-1, 1)`` independently, and the box is clipped to
    the image. A box that would end up narrower or lower than one pixel is left unchanged.

    Args:
        boxes: float ``(N, 4)`` xyxy.
        image_size: ``(H, W)``.
        max_shift: the largest move, as a fraction of the box side (``>= 0``).
        generator: a CPU ``torch.Generator`` for reproducible jitter (the offsets are drawn on
            the CPU and moved to the boxes' device, so a seed gives the same boxes everywhere).

    Returns:
        float ``(N, 4)`` on the boxes' device.
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"jitter_boxes expects (N, 4) boxes, got {tuple(boxes.shape)}")
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    height, width = image_size
    unit = torch.rand((len(boxes), 4), generator=generator, dtype=torch.float64).to(boxes.device, boxes.dtype) * 2 - 1
    sides = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], dim=1).repeat(1, 2)
    moved = boxes + unit * max_shift * sides
    moved[:, 0::2] = moved[:, 0::2].clamp(0, width)
    moved[:, 1::2] = moved[:, 1::2].clamp(0, height)
    usable = ((moved[:, 2] - moved[:, 0]) >= 1) & ((moved[:, 3] - moved[:, 1]) >= 1)
    return torch.where(usable[:, None], moved, boxes)


def square_box(box_xywh: Sequence[float], scale: float = 1.0) -> tuple[float, float, float, float]:
    """The square ``(x0, y0, x1, y1)`` centred on a box ``[x, y, w, h]``, of side ``scale * max(w, h)``
    (:func:`square_boxes` for one COCO box)."""
    x, y, w, h = (float(v) for v in box_xywh)
    square = square_boxes(torch.tensor([[x, y, x + w, y + h]], dtype=torch.float64), scale)[0]
    return tuple(float(v) for v in square)


def crop_instance(
    rgb: torch.Tensor, masks: torch.Tensor, box_xyxy: Sequence[float], size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop ``box_xyxy`` (pixels, may extend past the image) from an image and its masks, resized to ``size``.

    rgb ``(3, H, W)`` in [0, 1], masks ``(K, H, W)`` {0, 1} -> rgb ``(3, size, size)`` and masks
    ``(K, size, size)`` re-binarised at 0.5.
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3 or masks.ndim != 3 or masks.shape[1:] != rgb.shape[1:]:
        raise InputError(
            f"crop_instance needs rgb (3, H, W) and masks (K, H, W) of the same size, got "
            f"{tuple(rgb.shape)}, {tuple(masks.shape)}"
        )
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    if not (x1 > x0 and y1 > y0):
        raise InputError(f"cannot crop an empty box {list(box_xyxy)}")
    stacked = torch.cat([rgb.float(), masks.float()])[None]
    boxes = torch.tensor([[0.0, x0, y0, x1, y1]])
    cropped = roi_align(stacked, boxes, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)[0]
    return cropped[:3].clamp(0.0, 1.0), (cropped[3:] >= 0.5).float()
