"""Stage-2 inputs from image files: read an image and a visible mask, crop an instance, resize to S.

The stage-2 input of instance i is ``A_i = [I_i^a, M_i^v]``: the RGB image cropped by the amodal
box and the visible mask in that box (paper 3.1), both resized to ``S x S``. :func:`crop_instance`
does the cropping with RoIAlign (bilinear, pixels outside the image read as 0), so the same
function serves a whole image (box = the image) and a box inside a scene.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import imageio.v3 as iio
import numpy as np
import torch
from torchvision.ops import roi_align

from a3d_core.errors import InputError
from a3d_core.model.roi import square_boxes


def read_rgb(path: str | os.PathLike) -> torch.Tensor:
    """An image file as ``(3, H, W)`` float in [0, 1] (grey is repeated, alpha dropped)."""
    array = _read_image(path)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InputError(f"{path}: expected a grey, RGB or RGBA image, got an array of shape {array.shape}")
    return _to_unit_float(array[..., :3]).permute(2, 0, 1).contiguous()


def read_mask(path: str | os.PathLike) -> torch.Tensor:
    """A mask image as ``(H, W)`` float {0, 1}: any non-zero pixel (of any channel) is inside."""
    array = _read_image(path)
    if array.ndim == 3:
        array = array.max(axis=2)
    if array.ndim != 2:
        raise InputError(f"{path}: expected a single-channel mask image, got an array of shape {array.shape}")
    return torch.from_numpy((array > 0).astype(np.float32))


def _read_image(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image not found")
    try:
        return np.asarray(iio.imread(path, plugin="pillow"))
    except Exception as error:  # imageio raises plugin-specific errors for unreadable files
        raise InputError(f"{path}: not a readable image ({type(error).__name__})") from None


def _to_unit_float(array: np.ndarray) -> torch.Tensor:
    if array.dtype == np.uint8:
        return torch.from_numpy(array.astype(np.float32) / 255.0)
    if array.dtype == np.uint16:
        return torch.from_numpy(array.astype(np.float32) / 65535.0)
    return torch.from_numpy(array.astype(np.float32)).clamp(0.0, 1.0)


def square_box(box_xywh: Sequence[float], scale: float = 1.0) -> tuple[float, float, float, float]:
    """The square ``(x0, y0, x1, y1)`` centred on a box ``[x, y, w, h]``, of side ``scale * max(w, h)``
    (:func:`~a3d_core.model.roi.square_boxes` for one COCO box)."""
    x, y, w, h = (float(v) for v in box_xywh)
    square = square_boxes(torch.tensor([[x, y, x + w, y + h]], dtype=torch.float64), scale)[0]
    return tuple(float(v) for v in square)


def crop_instance(rgb: torch.Tensor, masks: torch.Tensor, box_xyxy: Sequence[float], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop ``box_xyxy`` (pixels, may extend past the image) from an image and its masks, resized to ``size``.

    rgb ``(3, H, W)`` in [0, 1], masks ``(K, H, W)`` {0, 1} -> rgb ``(3, size, size)`` and masks
    ``(K, size, size)`` re-binarised at 0.5.
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3 or masks.ndim != 3 or masks.shape[1:] != rgb.shape[1:]:
        raise InputError(f"crop_instance needs rgb (3, H, W) and masks (K, H, W) of the same size, got "
                         f"{tuple(rgb.shape)}, {tuple(masks.shape)}")
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    if not (x1 > x0 and y1 > y0):
        raise InputError(f"cannot crop an empty box {list(box_xyxy)}")
    stacked = torch.cat([rgb.float(), masks.float()])[None]
    boxes = torch.tensor([[0.0, x0, y0, x1, y1]])
    cropped = roi_align(stacked, boxes, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)[0]
    return cropped[:3].clamp(0.0, 1.0), (cropped[3:] >= 0.5).float()
