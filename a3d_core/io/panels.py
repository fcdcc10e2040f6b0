"""Pictures of completions a person reads at a glance: one row of panels per instance.

Each row shows one instance, cropped to a square around it and enlarged (nearest neighbour) to
``size`` pixels, so that a 30-pixel object in a 128x96 scene is as readable as a large one::

    input | visible mask | amodal mask | ground truth (when known)

- *input*: the crop of the image, labelled with the row's text (e.g. ``1 car 0.93 depth 2/3``: the
  best detection, a car scoring 0.93, second from the front of three, :mod:`a3d_core.pipelines.predict`);
- *visible mask*: the mask the completion starts from, in :data:`VISIBLE_COLOUR` (blue) over the
  dimmed crop;
- *amodal mask*: the predicted amodal mask, its visible part in blue and the part it COMPLETED
  (amodal and not visible: hidden behind something) in :data:`COMPLETED_COLOUR` (orange);
- *ground truth*: the true amodal mask drawn the same way (blue where the visible mask covers it,
  orange for its hidden part), with the predicted amodal mask's outline in white on top, so that
  the two shapes compare at one look.

:func:`instance_figure` stacks rows under a header naming the columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

VISIBLE_COLOUR = (0, 130, 200)
COMPLETED_COLOUR = (245, 130, 48)
OUTLINE_COLOUR = (255, 255, 255)
BACKGROUND = (32, 32, 32)
TEXT_COLOUR = (240, 240, 240)

COLUMNS = ("input", "visible mask", "amodal (orange: completed)", "ground truth (white: predicted)")


@dataclass(frozen=True)
class PanelSettings:
    """How the panels look.

    Attributes:
        size: side of every panel in pixels; crops are enlarged (or reduced) to it, nearest neighbour.
        margin: context around the instance, as a fraction of its box's longer side on each side.
        dim: brightness of the crop under the masks (0 black, 1 unchanged).
        gap: pixels between panels and between rows.
        header: height of the column-name strip in pixels (0: none).
    """

    size: int = 192
    margin: float = 0.15
    dim: float = 0.4
    gap: int = 4
    header: int = 22

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"PanelSettings.size must be at least 16, got {self.size}")
        if self.margin < 0 or not 0.0 <= self.dim <= 1.0 or self.gap < 0 or self.header < 0:
            raise ValueError(f"PanelSettings: margin and gap must be >= 0 and dim in [0, 1], got {self}")


def crop_window(masks: Sequence[np.ndarray], margin: float) -> tuple[int, int, int]:
    """The square ``(top, left, side)`` around the union of ``masks`` ``(H, W)``, widened by
    ``margin`` of its longer side on each side (it may reach outside the image)."""
    union = np.zeros_like(np.asarray(masks[0], bool))
    for mask in masks:
        union |= np.asarray(mask, bool)
    ys, xs = np.nonzero(union)
    if ys.size == 0:
        return 0, 0, max(union.shape)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = int(np.ceil(max(bottom - top, right - left) * (1.0 + 2.0 * margin)))
    return int((top + bottom - side) // 2), int((left + right - side) // 2), max(side, 1)


def enlarge_crop(array: np.ndarray, window: tuple[int, int, int], size: int, fill: float | int = 0) -> np.ndarray:
    """The square ``window`` of ``array`` ``(H, W, ...)`` resampled to ``(size, size, ...)`` by
    nearest neighbour; pixels outside the array take ``fill``."""
    top, left, side = window
    source = (np.arange(size) * side) // size
    rows, cols = top + source, left + source
    inside_rows = (rows >= 0) & (rows < array.shape[0])
    inside_cols = (cols >= 0) & (cols < array.shape[1])
    picked = array[np.clip(rows, 0, array.shape[0] - 1)][:, np.clip(cols, 0, array.shape[1] - 1)]
    outside = ~(inside_rows[:, None] & inside_cols[None, :])
    picked = picked.copy()
    picked[outside] = fill
    return picked


def instance_row(
    image: np.ndarray,
    visible: np.ndarray,
    amodal: np.ndarray,
    ground_truth: np.ndarray | None = None,
    label: str = "",
    settings: PanelSettings = PanelSettings(),
) -> np.ndarray:
    """One instance's panels side by side (see the module docstring).

    Args:
        image: ``(H, W, 3)`` uint8.
        visible, amodal, ground_truth: ``(H, W)`` masks (bool, 0/1 or probabilities: ``> 0.5`` counts).
        label: written in the input panel's corner.

    Returns:
        ``(size, 3 * size + 2 * gap, 3)`` uint8, or ``4 * size + 3 * gap`` wide with ``ground_truth``.
    """
    image = _check_image(image)
    masks = [_binary(mask, image.shape[:2], name) for mask, name in ((visible, "visible"), (amodal, "amodal"))]
    if ground_truth is not None:
        masks.append(_binary(ground_truth, image.shape[:2], "ground_truth"))
    window = crop_window(masks, settings.margin)
    crop = enlarge_crop(image, window, settings.size, fill=np.array(BACKGROUND, np.uint8))
    seen, whole, *truth = (enlarge_crop(mask, window, settings.size, fill=False) for mask in masks)
    dimmed = (crop.astype(np.float64) * settings.dim).round().astype(np.uint8)
    nothing = np.zeros_like(seen)
    panels = [_labelled(crop, label), _painted(dimmed, seen, nothing), _painted(dimmed, whole & seen, whole & ~seen)]
    if truth:
        expected = _painted(dimmed, truth[0] & seen, truth[0] & ~seen)
        expected[_outline(whole)] = OUTLINE_COLOUR
        panels.append(expected)
    return _side_by_side(panels, settings.gap)


def instance_figure(
    image: np.ndarray,
    visible_masks: np.ndarray,
    amodal_masks: np.ndarray,
    ground_truth_masks: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    settings: PanelSettings = PanelSettings(),
) -> np.ndarray:
    """Rows of :func:`instance_row`, one per instance, under a header naming the columns.

    Args:
        image: ``(H, W, 3)`` uint8.
        visible_masks, amodal_masks, ground_truth_masks: ``(N, H, W)``.
        labels: ``N`` row labels (default ``"1"`` ... ``"N"``).

    Returns:
        uint8 ``(header + N * (size + gap), width, 3)``; with no instance, the whole image
        enlarged to the width of three panels under the header ``no instance``.
    """
    image = _check_image(image)
    count = len(visible_masks)
    if len(amodal_masks) != count or (ground_truth_masks is not None and len(ground_truth_masks) != count):
        raise ValueError("instance_figure needs as many amodal (and ground-truth) masks as visible masks")
    labels = list(labels) if labels is not None else [str(k + 1) for k in range(count)]
    if len(labels) != count:
        raise ValueError(f"instance_figure got {len(labels)} labels for {count} instances")
    if count == 0:
        width = 3 * settings.size + 2 * settings.gap
        height = max(1, round(width * image.shape[0] / image.shape[1]))
        rows, cols = (np.arange(height) * image.shape[0]) // height, (np.arange(width) * image.shape[1]) // width
        return _stack([_header(["no instance"], settings, width), image[rows][:, cols]], settings.gap)
    rows = [
        instance_row(
            image,
            visible_masks[k],
            amodal_masks[k],
            None if ground_truth_masks is None else ground_truth_masks[k],
            labels[k],
            settings,
        )
        for k in range(count)
    ]
    return figure_of_rows(rows, ground_truth_masks is not None, settings)


def figure_of_rows(
    rows: Sequence[np.ndarray], ground_truth: bool, settings: PanelSettings = PanelSettings()
) -> np.ndarray:
    """Rows of :func:`instance_row` (made with ``settings``; with ground truth or all without) under
    the header naming their columns: one picture of instances from several images, e.g."""
    if not rows:
        raise ValueError("figure_of_rows needs at least one row")
    columns = COLUMNS if ground_truth else COLUMNS[:3]
    return _stack([_header(columns, settings, rows[0].shape[1]), *rows], settings.gap)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"panels expect an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    return image


def _binary(mask: np.ndarray, size: tuple[int, int], name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != size:
        raise ValueError(f"panels expect {name} of shape {size}, got {mask.shape}")
    return mask if mask.dtype == bool else mask > 0.5


def _painted(dimmed: np.ndarray, seen: np.ndarray, completed: np.ndarray) -> np.ndarray:
    panel = dimmed.copy()
    panel[seen] = VISIBLE_COLOUR
    panel[completed] = COMPLETED_COLOUR
    return panel


def _erode(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` whose four neighbours are in it too (outside the array counts as outside)."""
    padded = np.pad(mask, 1, constant_values=False)
    return mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]


def _outline(mask: np.ndarray) -> np.ndarray:
    """The 2-pixel inner border of ``mask``."""
    return mask & ~_erode(_erode(mask))


def _labelled(panel: np.ndarray, label: str) -> np.ndarray:
    if not label:
        return panel
    picture = Image.fromarray(panel)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((4, 3), label, font=font)
    draw.rectangle((left - 3, top - 2, right + 3, bottom + 2), fill=BACKGROUND)
    draw.text((4, 3), label, fill=TEXT_COLOUR, font=font)
    return np.asarray(picture)


def _header(columns: Sequence[str], settings: PanelSettings, width: int) -> np.ndarray:
    strip = Image.new("RGB", (width, max(settings.header, 1)), BACKGROUND)
    if settings.header:
        draw = ImageDraw.Draw(strip)
        font = ImageFont.load_default()
        for k, name in enumerate(columns):
            draw.text((k * (settings.size + settings.gap) + 4, 4), name, fill=TEXT_COLOUR, font=font)
    return np.asarray(strip)[: settings.header]


def _side_by_side(panels: Sequence[np.ndarray], gap: int) -> np.ndarray:
    height = panels[0].shape[0]
    spacer = np.full((height, gap, 3), BACKGROUND, np.uint8)
    parts = [part for panel in panels for part in (panel, spacer)][:-1]
    return np.concatenate(parts, axis=1)


def _stack(rows: Sequence[np.ndarray], gap: int) -> np.ndarray:
    rows = [row for row in rows if row.shape[0] > 0]
    width = max(row.shape[1] for row in rows)
    padded = [
        np.concatenate([row, np.full((row.shape[0], width - row.shape[1], 3), BACKGROUND, np.uint8)], axis=1)
        for row in rows
    ]
    spacer = np.full((gap, width, 3), BACKGROUND, np.uint8)
    parts = [part for row in padded for part in (row, spacer)][:-1]
    return np.concatenate(parts, axis=0)
