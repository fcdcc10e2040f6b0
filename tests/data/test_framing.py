"""Framing single-object views like the two-stage network's instance crops (a3d_core.data.framing)."""

from __future__ import annotations

import pytest
import torch

from a3d_core.boxes import mask_boxes_or_image
from a3d_core.data.framing import FramedViews, frame_view


def _view(size: int = 16) -> dict[str, torch.Tensor]:
    """An 8 x 4 amodal rectangle at rows 2..9, columns 4..7, its lower half hidden."""
    amodal = torch.zeros(1, size, size)
    amodal[0, 2:10, 4:8] = 1
    visible = amodal.clone()
    visible[0, 6:10] = 0
    rgb = torch.zeros(3, size, size)
    rgb[1] = amodal[0]  # the object is green
    return {"rgb": rgb, "visible": visible, "amodal": amodal, "category": torch.tensor(1)}


def test_the_amodal_box_fills_the_crop_at_scale_one_and_the_middle_at_scale_two():
    view = _view()
    tight = frame_view(view, 1.0)  # the square of side 8 around the 8 x 4 box: rows 2..9, columns 2..9
    # twice as large: columns 4..7 -> 4..11
    assert mask_boxes_or_image(tight["amodal"]).tolist() == [[4.0, 0.0, 12.0, 16.0]]
    # the visible top half stays the top half
    assert mask_boxes_or_image(tight["visible"]).tolist() == [[4.0, 0.0, 12.0, 8.0]]
    # inside the object, away from its resampled edges
    assert torch.equal(tight["rgb"][1, 1:15, 5:11], torch.ones(14, 6))
    assert tight["category"] is view["category"]  # other entries are kept

    # the square of side 16 around the box: the object covers the middle half of its height
    loose = frame_view(view, 2.0)
    assert mask_boxes_or_image(loose["amodal"]).tolist() == [[6.0, 4.0, 10.0, 12.0]]


def test_framed_views_frame_every_item_and_read_the_dataset_attributes_through():
    class Views(list):
        categories = ["car", "chair"]

    framed = FramedViews(Views([_view(), _view()]), 1.0)
    assert len(framed) == 2 and framed.categories == ["car", "chair"]
    assert torch.equal(framed[1]["amodal"], frame_view(_view(), 1.0)["amodal"])
    with pytest.raises(ValueError, match="framing scale"):
        FramedViews(Views(), 0.5)


def test_the_occluder_is_framed_at_the_amodal_box_s_square_like_the_visible_mask():
    view = _view()
    view["occluder"] = torch.zeros(1, 16, 16)
    view["occluder"][0, 6:12, 0:16] = 1  # a band over the hidden lower half, wider than the object
    tight = frame_view(view, 1.0)
    assert tight["occluder"].shape == (1, 16, 16) and set(tight["occluder"].unique().tolist()) == {0.0, 1.0}
    # rows 6..9 of the square rows 2..9 are rows 8..15 of the crop; the band reaches past the box
    assert mask_boxes_or_image(tight["occluder"]).tolist() == [[0.0, 8.0, 16.0, 16.0]]
    assert torch.equal(tight["occluder"] * tight["amodal"], tight["amodal"] - tight["visible"])
    assert "occluder" not in frame_view(_view(), 1.0)
