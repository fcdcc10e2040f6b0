"""Small charts as PNG bytes, drawn with Pillow (no plotting library needed): grouped bars with
intervals, a histogram and lines with intervals, for benchmark reports."""

from __future__ import annotations

from typing import Mapping, Sequence

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw

COLOURS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
)
_LEFT, _TOP, _RIGHT_MARGIN, _BOTTOM_MARGIN = 56, 40, 16, 70


_LEGEND_ROW = 14
_LEGEND_ROWS_IN_MARGIN = 2
"""Legend rows that fit below the axis labels in ``_BOTTOM_MARGIN``; each further row makes the image taller."""


def _legend_rows(names: Sequence[str], width: int) -> list[list[tuple[int, str, int]]]:
    """``(series index, name, x)`` of each swatch, row by row: a row ends where the next name would
    run past the image's right edge."""
    rows: list[list[tuple[int, str, int]]] = [[]]
    x = _LEFT
    for k, name in enumerate(names):
        step = 14 + 7 * len(name) + 16
        if rows[-1] and x + step - 16 > width:
            rows.append([])
            x = _LEFT
        rows[-1].append((k, name, x))
        x += step
    return rows


def _frame(width: int, height: int, title: str, y_range: tuple[float, float], y_label: str, names: Sequence[str] = ()):
    """A white image with the plot box, y ticks and titles, ``height`` grown by the legend rows of
    ``names`` beyond those that fit in the bottom margin; returns the image, its draw and the box."""
    rows = _legend_rows(names, width)
    extra = _LEGEND_ROW * max(0, len(rows) - _LEGEND_ROWS_IN_MARGIN)
    height += extra
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    box = (_LEFT, _TOP, width - _RIGHT_MARGIN, height - _BOTTOM_MARGIN - extra)
    draw.rectangle(box, outline="black")
    low, high = y_range
    for tick in np.linspace(low, high, 6):
        y = box[3] - (tick - low) / (high - low) * (box[3] - box[1])
        draw.line((box[0] - 4, y, box[0], y), fill="black")
        draw.line((box[0], y, box[2], y), fill=(230, 230, 230))
        draw.text((4, y - 5), f"{tick:g}", fill="black")
    draw.text((box[0], 6), title, fill="black")
    draw.text((box[0], 20), y_label, fill=(90, 90, 90))
    return image, draw, box


def _y(value: float, box, y_range) -> float:
    low, high = y_range
    return box[3] - (min(max(value, low), high) - low) / (high - low) * (box[3] - box[1])


def _legend(draw: ImageDraw.ImageDraw, names: Sequence[str], width: int, height: int) -> None:
    """A swatch and the name of each series below the plot, wrapped onto more rows (the last at the
    bottom of the image, whose height :func:`_frame` grew to hold them)."""
    rows = _legend_rows(names, width)
    for r, row in enumerate(rows):
        y = height - 16 - _LEGEND_ROW * (len(rows) - 1 - r)
        for k, name, x in row:
            draw.rectangle((x, y, x + 10, y + 10), fill=COLOURS[k % len(COLOURS)])
            draw.text((x + 14, y - 2), name, fill="black")


def _png(image: Image.Image) -> bytes:
    return iio.imwrite("<bytes>", np.asarray(image), extension=".png")


def grouped_bars(
    title: str,
    groups: Sequence[str],
    series: Mapping[str, Sequence[tuple[float, float, float]]],
    y_range: tuple[float, float] = (0.0, 100.0),
    y_label: str = "",
) -> bytes:
    """Bars per group (x) and series (colour), each ``(value, low, high)`` with its interval as a whisker."""
    names = list(series)
    width = max(480, 24 + len(groups) * (len(names) * 9 + 14) + _LEFT)
    image, draw, box = _frame(width, 360, title, y_range, y_label, names)
    slot = (box[2] - box[0]) / max(len(groups), 1)
    bar = max(2.0, (slot - 8) / max(len(names), 1))
    for g, group in enumerate(groups):
        x0 = box[0] + g * slot + 4
        for k, name in enumerate(names):
            value, low, high = series[name][g]
            if np.isnan(value):
                continue
            left = x0 + k * bar
            draw.rectangle((left, _y(value, box, y_range), left + bar - 1, box[3]), fill=COLOURS[k % len(COLOURS)])
            centre = left + bar / 2
            draw.line((centre, _y(low, box, y_range), centre, _y(high, box, y_range)), fill="black")
        draw.text((x0, box[3] + 4), group[:9], fill="black")
    _legend(draw, names, *image.size)
    return _png(image)


def histogram(title: str, samples: Mapping[str, np.ndarray], bins: np.ndarray, x_label: str = "") -> bytes:
    """Overlaid step histograms (share of samples per bin) of each named sample set."""
    width = 520
    shares = {
        name: np.histogram(np.asarray(values), bins=bins)[0] / max(len(values), 1) for name, values in samples.items()
    }
    top = max([float(s.max()) for s in shares.values() if len(s)] + [1e-6])
    y_range = (0.0, float(np.ceil(top * 10) / 10))
    image, draw, box = _frame(width, 360, title, y_range, "share of instances", list(shares))
    span = bins[-1] - bins[0]

    def to_x(v):
        return box[0] + (v - bins[0]) / span * (box[2] - box[0])

    for k, (name, share) in enumerate(shares.items()):
        points = []
        for i, value in enumerate(share):
            y = _y(float(value), box, y_range)
            points += [(to_x(bins[i]), y), (to_x(bins[i + 1]), y)]
        draw.line(points, fill=COLOURS[k % len(COLOURS)], width=2)
    for tick in bins[:: max(1, len(bins) // 6)]:
        draw.text((to_x(tick) - 6, box[3] + 4), f"{tick:g}", fill="black")
    draw.text((box[2] - 7 * len(x_label), box[3] + 18), x_label, fill=(90, 90, 90))
    _legend(draw, list(shares), *image.size)
    return _png(image)


def lines(
    title: str,
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[tuple[float, float, float]]],
    y_range: tuple[float, float] = (0.0, 100.0),
    y_label: str = "",
) -> bytes:
    """One line per series over categorical x positions, with interval whiskers."""
    width = 560
    image, draw, box = _frame(width, 360, title, y_range, y_label, list(series))
    slot = (box[2] - box[0]) / max(len(x_labels), 1)
    for k, (name, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        points = [
            (box[0] + (i + 0.5) * slot, _y(v[0], box, y_range)) for i, v in enumerate(values) if not np.isnan(v[0])
        ]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for i, (value, low, high) in enumerate(values):
            if np.isnan(value):
                continue
            x = box[0] + (i + 0.5) * slot + 3 * k
            draw.line((x, _y(low, box, y_range), x, _y(high, box, y_range)), fill=colour)
            draw.ellipse((x - 3, _y(value, box, y_range) - 3, x + 3, _y(value, box, y_range) + 3), fill=colour)
    for i, label in enumerate(x_labels):
        draw.text((box[0] + i * slot + 4, box[3] + 4), label[:18], fill="black")
    _legend(draw, list(series), *image.size)
    return _png(image)
