"""Frame single-object views the way the two-stage network frames its instances (paper 3.1, 3.3).

In the two-stage network stage 2 sees each instance cropped at the square around its amodal box,
``crop_scale`` times the box's longer side (:func:`~a3d_core.boxes.square_boxes`): every
object fills the crop alike, whatever its size in the image. Kato's renders (and ``a3d prepare
shapenet``'s) frame objects otherwise: a fixed camera distance, so an object's longer side spans
about half of the view, more or less with its shape. A shape prior pretrained on those views
learns to render objects at that size, and its viewpoint estimator (distance in a bounded range)
cannot grow them to fill a scene crop; fine-tuning then has to unlearn it.

:class:`FramedViews` re-crops each view of a pretraining dataset at the same square around its
amodal mask's box, resampled to the same side ``S``, so the prior meets the framing it will see
in the two-stage network. The framing is part of the pretrained network's input contract
(:attr:`~a3d_core.model.asm.ASMSettings.input_framing`), and ``a3d finetune`` crops with it.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch.utils.data import Dataset

from a3d_core.boxes import crop_images, crop_masks, mask_boxes_or_image, square_boxes


def frame_view(sample: Mapping[str, Any], scale: float) -> dict[str, Any]:
    """One view re-cropped at the square around its amodal box, ``scale`` times its longer side.

    Args:
        sample: ``rgb`` ``(3, S, S)``, ``visible`` and ``amodal`` ``(1, S, S)`` in {0, 1}, and
            optionally ``occluder`` ``(1, S, S)`` in {0, 1}; other entries are kept as they are.
        scale: crop side / the amodal box's longer side (``>= 1``).

    Returns:
        the sample with ``rgb`` ``(3, S, S)`` (zeros where the square leaves the view), and
        ``visible``, ``amodal`` (and ``occluder``) ``(1, S, S)`` cropped at the same square,
        re-binarised at 0.5. ``occlusion_rate`` is kept:
        resampling changes the areas by at most a pixel's worth along the edges.
    """
    rgb, visible, amodal = sample["rgb"], sample["visible"], sample["amodal"]
    if rgb.ndim != 3 or visible.shape != amodal.shape or visible.shape[-2:] != rgb.shape[-2:]:
        raise ValueError(
            f"frame_view expects rgb (3, S, S) and masks (1, S, S), got {tuple(rgb.shape)}, "
            f"{tuple(visible.shape)}, {tuple(amodal.shape)}"
        )
    size = rgb.shape[-1]
    square = square_boxes(mask_boxes_or_image(amodal[:1].float()), scale)
    names = [name for name in ("visible", "amodal", "occluder") if name in sample]
    stacked = torch.cat([sample[name][:1] for name in names]).float()
    masks = crop_masks(stacked, square.expand(len(names), 4), size)
    framed = dict(sample)
    framed["rgb"] = crop_images(rgb[None].float(), [square], size)[0]
    for i, name in enumerate(names):
        framed[name] = (masks[i : i + 1] >= 0.5).float()
    return framed


def frame_masks(masks: torch.Tensor, scale: float) -> torch.Tensor:
    """Masks ``(B, S, S)`` each re-cropped at the square around its own box, ``scale`` times its
    longer side, resampled to ``S`` and re-binarised at 0.5 -> ``(B, S, S)`` in {0, 1}: the framing
    of :func:`frame_view`, applied to masks alone (e.g. a mesh's silhouette at a new camera, so that
    it is compared with a framed view up to position and scale). An empty mask stays empty."""
    if masks.ndim != 3 or masks.shape[-1] != masks.shape[-2]:
        raise ValueError(f"frame_masks expects (B, S, S) masks, got {tuple(masks.shape)}")
    square = square_boxes(mask_boxes_or_image(masks.float()), scale)
    return (crop_masks(masks.float(), square, masks.shape[-1]) >= 0.5).float()


class FramedViews(Dataset):
    """``dataset`` with every item re-framed by :func:`frame_view` at ``scale``.

    Attributes of the wrapped dataset (``categories``, ``object_index``, ...) are read through.
    """

    def __init__(self, dataset: Dataset, scale: float) -> None:
        if not 1.0 <= scale <= 4.0:
            raise ValueError(f"framing scale must be in [1, 4], got {scale}")
        self.dataset = dataset
        self.scale = scale

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return frame_view(self.dataset[index], self.scale)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)
