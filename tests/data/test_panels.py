"""Panels of completions: the crop, its enlargement and the colour of every region, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from a3d_core.io.panels import (
    COMPLETED_COLOUR,
    OUTLINE_COLOUR,
    VISIBLE_COLOUR,
    PanelSettings,
    crop_window,
    enlarge_crop,
    figure_of_rows,
    instance_figure,
    instance_row,
)

SETTINGS = PanelSettings(size=40, margin=0.0, dim=0.5, gap=2, header=12)


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 20 x 30 grey image; an instance whose amodal mask is rows 5-14, columns 10-19 and whose
    left half (columns 10-14) is visible."""
    image = np.full((20, 30, 3), 200, np.uint8)
    amodal = np.zeros((20, 30), bool)
    amodal[5:15, 10:20] = True
    visible = amodal.copy()
    visible[:, 15:] = False
    return image, visible, amodal


def test_the_window_is_the_square_around_all_masks_with_its_margin():
    _, visible, amodal = _scene()
    assert crop_window([visible, amodal], 0.0) == (5, 10, 10)
    # the 10 x 5 visible part centred in a 10-pixel square (left 7.5, floored)
    assert crop_window([visible], 0.0) == (5, 7, 10)
    assert crop_window([amodal], 0.5) == (0, 5, 20)


def test_enlarging_repeats_pixels_and_fills_outside_the_image():
    array = np.arange(4).reshape(2, 2)
    assert enlarge_crop(array, (0, 0, 2), 4).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert enlarge_crop(array, (-1, 0, 2), 2, fill=9).tolist() == [[9, 9], [0, 1]]


def test_each_panel_colours_its_regions():
    image, visible, amodal = _scene()
    truth = amodal.copy()
    truth[5:15, 18:20] = False  # the true object is 2 columns shorter than the prediction
    row = instance_row(image, visible, amodal, truth, settings=SETTINGS)
    size, gap = SETTINGS.size, SETTINGS.gap
    assert row.shape == (size, 4 * size + 3 * gap, 3)
    panels = [row[:, k * (size + gap) : k * (size + gap) + size] for k in range(4)]
    # the crop is the 10 x 10 amodal box, 4 times larger: crop pixel (y, x) -> panel (4y, 4x)
    assert (panels[0] == 200).all()
    # hidden part: dimmed image
    assert tuple(panels[1][20, 8]) == VISIBLE_COLOUR and tuple(panels[1][20, 30]) == (100, 100, 100)
    assert tuple(panels[2][20, 8]) == VISIBLE_COLOUR and tuple(panels[2][20, 30]) == COMPLETED_COLOUR
    assert tuple(panels[3][20, 22]) == COMPLETED_COLOUR  # the true hidden part
    assert tuple(panels[3][20, 34]) == (100, 100, 100)  # predicted but not true: dimmed, inside the white outline
    # the prediction's border
    assert tuple(panels[3][20, 39]) == OUTLINE_COLOUR and tuple(panels[3][0, 20]) == OUTLINE_COLOUR


def test_a_figure_stacks_rows_under_a_header():
    image, visible, amodal = _scene()
    figure = instance_figure(
        image,
        np.stack([visible, visible]),
        np.stack([amodal, amodal]),
        labels=["1 car 0.90", "2 car 0.40"],
        settings=SETTINGS,
    )
    assert figure.shape == (12 + 2 * (40 + 2), 3 * 40 + 2 * 2, 3)
    with pytest.raises(ValueError, match="2 labels for 1 instances"):
        instance_figure(image, visible[None], amodal[None], labels=["a", "b"], settings=SETTINGS)
    none = np.zeros((0, 20, 30), bool)
    empty = instance_figure(image, none, none, settings=SETTINGS)
    assert empty.shape[1] == 3 * 40 + 2 * 2  # the whole image, as wide as three panels
    rows = [instance_row(image, visible, amodal, amodal, settings=SETTINGS)] * 3
    assert figure_of_rows(rows, ground_truth=True, settings=SETTINGS).shape == (12 + 3 * 40 + 3 * 2, 4 * 40 + 3 * 2, 3)
