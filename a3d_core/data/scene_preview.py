"""A preview grid of composed scenes: one row per scene, columns image | visible | amodal.

The visible column paints each instance's visible mask in its own colour (they never overlap).
The amodal column paints the amodal masks back to front, half transparent so that overlaps show,
and draws each amodal outline on top in the instance's colour, so hidden parts stay readable.
Both mask columns lie over a dimmed grey copy of the image.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from a3d_core.data.masks import erode
from a3d_core.data.scenes import Scene

PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (170, 110, 40),
    ],
    dtype=np.float32,
)
GAP = 4


def instance_colour(index: int) -> np.ndarray:
    """RGB ``(3,)`` float32 in [0, 255] for instance ``index`` (front-most is 0)."""
    return PALETTE[index % len(PALETTE)]


def _dimmed(image: np.ndarray) -> np.ndarray:
    grey = image.astype(np.float32).mean(axis=-1, keepdims=True)
    return np.repeat(0.35 * grey, 3, axis=-1)


def visible_panel(scene: Scene) -> np.ndarray:
    """``(H, W, 3)`` uint8: each visible mask in its instance's colour over the dimmed image."""
    panel = _dimmed(scene.image)
    for index, instance in enumerate(scene.instances):
        panel[instance.visible] = instance_colour(index)
    return panel.astype(np.uint8)


def amodal_panel(scene: Scene, opacity: float = 0.5) -> np.ndarray:
    """``(H, W, 3)`` uint8: amodal masks blended back to front, then their outlines."""
    panel = _dimmed(scene.image)
    for index in reversed(range(len(scene.instances))):
        mask = scene.instances[index].amodal
        panel[mask] = (1.0 - opacity) * panel[mask] + opacity * instance_colour(index)
    for index, instance in enumerate(scene.instances):
        outline = instance.amodal & ~erode(instance.amodal)
        panel[outline] = instance_colour(index)
    return panel.astype(np.uint8)


def preview_grid(scenes: Sequence[Scene]) -> np.ndarray:
    """``(rows * (H + gap) - gap, 3 * (W + gap) - gap, 3)`` uint8 on white; one row per scene."""
    if not scenes:
        raise ValueError("preview_grid needs at least one scene")
    height, width = scenes[0].image.shape[:2]
    grid = np.full((len(scenes) * (height + GAP) - GAP, 3 * (width + GAP) - GAP, 3), 255, dtype=np.uint8)
    for row, scene in enumerate(scenes):
        top = row * (height + GAP)
        for column, panel in enumerate((scene.image, visible_panel(scene), amodal_panel(scene))):
            left = column * (width + GAP)
            grid[top : top + height, left : left + width] = panel
    return grid
