"""Precision-recall curves and the IoU histogram as PNG files (no plotting library needed).

Figures are drawn with Pillow's ``ImageDraw`` (Pillow comes with imageio) and encoded by
imageio; files are written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image, ImageDraw

from a3d_core.eval.evaluate import EvaluationResult, KindResult
from a3d_core.io.atomic import atomic_write_bytes

_SIZE = (480, 360)
_MARGIN = 48
_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))


def _axes(
    title: str, x_label: str, y_label: str, unit_y: bool = True
) -> tuple[Image.Image, ImageDraw.ImageDraw, tuple[int, int, int, int]]:
    """A white canvas with a framed plot area; ticks 0..1 on x (and on y with ``unit_y``)."""
    image = Image.new("RGB", _SIZE, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = _MARGIN, _MARGIN // 2 + 8, _SIZE[0] - 16, _SIZE[1] - _MARGIN
    draw.rectangle((left, top, right, bottom), outline="black")
    for tick in np.linspace(0.0, 1.0, 6):
        x = left + tick * (right - left)
        draw.line((x, bottom, x, bottom + 4), fill="black")
        draw.text((x - 8, bottom + 6), f"{tick:.1f}", fill="black")
        if unit_y:
            y = bottom - tick * (bottom - top)
            draw.line((left - 4, y, left, y), fill="black")
            draw.text((left - 26, y - 5), f"{tick:.1f}", fill="black")
    draw.text((left, 4), title, fill="black")
    draw.text(((left + right) // 2 - 20, _SIZE[1] - 16), x_label, fill="black")
    draw.text((4, top - 14), y_label, fill="black")
    return image, draw, (left, top, right, bottom)


def _png(image: Image.Image, path: Path) -> Path:
    return atomic_write_bytes(path, iio.imwrite("<bytes>", np.asarray(image), extension=".png"))


def mean_precision_curve(precision: torch.Tensor, threshold_index: int) -> np.ndarray:
    """Precision ``(R,)`` at one IoU threshold, area "all", the largest detection cap, averaged
    over the categories that have ground truth (entries ``> -1``); -1 where none has."""
    values = precision[threshold_index, :, :, 0, -1]  # (R, K)
    valid = values > -1
    total = torch.where(valid, values, torch.zeros_like(values)).sum(1)
    count = valid.sum(1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, -1.0)).numpy()


def precision_recall_png(
    kind: str, result: KindResult, path: str | os.PathLike, thresholds: Sequence[float] = (0.5, 0.75)
) -> Path:
    """Category-averaged precision-recall curves at the given IoU thresholds."""
    image, draw, (left, top, right, bottom) = _axes(
        f"{kind}: precision-recall (area all, maxDets 100)", "recall", "precision"
    )
    recall = np.asarray(result.recall_thresholds)
    for colour, threshold in zip(_COLOURS, thresholds):
        index = min(range(len(result.iou_thresholds)), key=lambda i: abs(result.iou_thresholds[i] - threshold))
        curve = mean_precision_curve(result.precision, index)
        points = [(left + r * (right - left), bottom - p * (bottom - top)) for r, p in zip(recall, curve) if p >= 0]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        legend_y = top + 6 + 14 * thresholds.index(threshold)
        draw.line((right - 90, legend_y + 5, right - 70, legend_y + 5), fill=colour, width=2)
        draw.text((right - 64, legend_y), f"IoU {result.iou_thresholds[index]:.2f}", fill="black")
    return _png(image, Path(path))


def iou_histogram_png(instance_iou: torch.Tensor, path: str | os.PathLike, bins: int = 20) -> Path:
    """Histogram of the per-instance IoUs behind mIoU, ``bins`` equal bins over [0, 1]."""
    counts, _ = np.histogram(instance_iou.numpy(), bins=bins, range=(0.0, 1.0))
    image, draw, (left, top, right, bottom) = _axes(
        f"instance IoU histogram (n = {int(counts.sum())})", "IoU", "count", unit_y=False
    )
    peak = max(int(counts.max()) if counts.size else 0, 1)
    width = (right - left) / bins
    for b, count in enumerate(counts):
        height = count / peak * (bottom - top - 16)
        draw.rectangle((left + b * width + 1, bottom - height, left + (b + 1) * width - 1, bottom), fill=_COLOURS[0])
    draw.text((left + 4, top + 4), f"max {peak}", fill="black")
    return _png(image, Path(path))


def write_plots(result: EvaluationResult, folder: str | os.PathLike) -> list[Path]:
    """``pr_<kind>.png`` per evaluated kind and ``iou_histogram.png``; returns the paths written."""
    folder = Path(folder)
    written = [
        precision_recall_png(kind, kind_result, folder / f"pr_{kind}.png") for kind, kind_result in result.kinds.items()
    ]
    if result.segments is not None:
        written.append(iou_histogram_png(result.segments.instance_iou, folder / "iou_histogram.png"))
    return written
