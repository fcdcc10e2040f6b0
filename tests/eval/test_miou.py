"""Mask IoU and its per-category means on hand-made masks."""

import pytest
import torch

from a3d_core.errors import InputError
from a3d_core.eval.miou import IoUByCategory, paired_mask_iou


def test_paired_mask_iou_on_hand_made_masks():
    prediction = torch.zeros(3, 4, 4)
    target = torch.zeros(3, 1, 4, 4)
    prediction[0, :2, :] = 0.9  # 8 pixels
    target[0, 0, :, :2] = 1  # 8 pixels, 4 shared -> 4 / 12
    prediction[1] = 0.5  # not above the threshold: empty
    target[1, 0, 0, 0] = 1  # -> 0 / 1
    # instance 2: both empty -> 1
    assert paired_mask_iou(prediction, target).tolist() == pytest.approx([1 / 3, 0.0, 1.0])


def test_paired_mask_iou_of_identical_masks_is_one_and_shapes_are_checked():
    masks = (torch.rand(2, 5, 5) > 0.5).float()
    assert paired_mask_iou(masks, masks).tolist() == [1.0, 1.0]
    with pytest.raises(InputError, match="differ in shape"):
        paired_mask_iou(torch.zeros(2, 5, 5), torch.zeros(2, 4, 4))
    with pytest.raises(InputError, match=r"expected a \(B, H, W\)"):
        paired_mask_iou(torch.zeros(5, 5), torch.zeros(5, 5))


def test_category_means_and_their_mean():
    accumulator = IoUByCategory(["cube", "ball", "cone"])
    accumulator.update(torch.tensor([1.0, 0.5]), torch.tensor([0, 0]))
    accumulator.update(torch.tensor([0.25]), torch.tensor([1]))
    summary = accumulator.summary()
    assert summary.per_category == {"cube": 0.75, "ball": 0.25}
    assert summary.counts == {"cube": 2, "ball": 1}
    assert summary.miou == pytest.approx(0.5)  # mean of categories, as the paper's Table 1
    assert summary.instance_miou == pytest.approx(1.75 / 3)
    assert summary.as_metrics("test/") == {
        "test/miou": 0.5,
        "test/instance_miou": pytest.approx(1.75 / 3),
        "test/miou/cube": 0.75,
        "test/miou/ball": 0.25,
    }


def test_category_iou_rejects_bad_indices_and_empty_summaries():
    accumulator = IoUByCategory(["cube"])
    with pytest.raises(InputError, match="no instances"):
        accumulator.summary()
    with pytest.raises(InputError, match="out of range"):
        accumulator.update(torch.tensor([0.5]), torch.tensor([1]))
