import pytest
import torch

from a3d_core.boxes import (
    crop_images,
    crop_masks,
    jitter_boxes,
    mask_bbox,
    mask_boxes_or_image,
    mask_boxes_or_zero,
    paste_masks,
)


def test_all_ones_crop_pasted_at_an_integer_box_fills_exactly_that_box():
    pasted = paste_masks(torch.ones(1, 4, 4), torch.tensor([[2.0, 1.0, 6.0, 3.0]]), (5, 8))
    expected = torch.zeros(1, 5, 8)
    expected[0, 1:3, 2:6] = 1
    assert torch.equal(pasted, expected)


def test_paste_clips_a_box_that_leaves_the_image():
    pasted = paste_masks(torch.ones(1, 3, 3), torch.tensor([[-2.0, 3.0, 2.0, 9.0]]), (6, 4))
    expected = torch.zeros(1, 6, 4)
    expected[0, 3:6, 0:2] = 1
    assert torch.equal(pasted, expected)


def test_paste_interpolates_bilinearly_with_border_values_at_the_box_edges():
    # Crop [[0, 1], [0, 1]] over a 4 x 2 box. Pixel centres x + 0.5 = 0.5, 1.5, 2.5, 3.5 fall at
    # crop coordinates (x + 0.5) / 4 * 2 - 0.5 = -0.25, 0.25, 0.75, 1.25: the border value 0,
    # then 0.25 and 0.75 of the way from 0 to 1, then the border value 1.
    crop = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    pasted = paste_masks(crop, torch.tensor([[0.0, 0.0, 4.0, 2.0]]), (2, 4))
    assert torch.allclose(pasted[0], torch.tensor([[0.0, 0.25, 0.75, 1.0]] * 2))


def test_paste_of_a_fractional_box_covers_the_pixels_whose_centres_are_inside():
    # Centres 1.5 and 2.5 lie in [1.4, 3.4); 0.5 and 3.5 do not.
    pasted = paste_masks(torch.ones(1, 2, 2), torch.tensor([[1.4, 0.0, 3.4, 1.0]]), (1, 5))
    assert pasted[0, 0].tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]


def test_empty_and_degenerate_boxes_paste_nothing():
    pasted = paste_masks(torch.ones(2, 2, 2), torch.tensor([[3.0, 3.0, 3.0, 5.0], [10.0, 10.0, 12.0, 12.0]]), (4, 4))
    assert pasted.abs().sum() == 0


def test_crop_of_an_integer_box_of_side_s_is_exactly_the_pixels():
    image = torch.arange(2 * 3 * 10 * 12, dtype=torch.float32).reshape(2, 3, 10, 12)
    boxes = [torch.tensor([[2.0, 1.0, 6.0, 5.0]]), torch.tensor([[0.0, 6.0, 4.0, 10.0], [8.0, 0.0, 12.0, 4.0]])]
    crops = crop_images(image, boxes, 4)
    assert crops.shape == (3, 3, 4, 4)
    assert torch.equal(crops[0], image[0, :, 1:5, 2:6])
    assert torch.equal(crops[1], image[1, :, 6:10, 0:4])
    assert torch.equal(crops[2], image[1, :, 0:4, 8:12])
    listed = crop_images([image[0], image[1, :, :8, :8]], [boxes[0], torch.tensor([[0.0, 0.0, 4.0, 4.0]])], 4)
    assert torch.equal(listed[1], image[1, :, 0:4, 0:4])


def test_crop_averages_when_shrinking():
    # A 4 x 4 box to 2 x 2: each crop pixel averages a 2 x 2 block.
    image = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    crop = crop_images(image, [torch.tensor([[0.0, 0.0, 4.0, 4.0]])], 2)
    assert torch.allclose(crop[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))


def test_crop_then_paste_gives_the_mask_back():
    masks = torch.zeros(2, 20, 24)
    masks[0, 4:12, 6:14] = 1
    masks[0, 6:8, 8:10] = 0  # a hole
    masks[1, 10:18, 2:10] = torch.tril(torch.ones(8, 8))
    boxes = torch.tensor([[6.0, 4.0, 14.0, 12.0], [2.0, 10.0, 10.0, 18.0]])
    exact = paste_masks(crop_masks(masks, boxes, 8), boxes, (20, 24))
    assert torch.equal(exact, masks)

    disk = torch.zeros(1, 64, 64)
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    disk[0][(ys - 30.5) ** 2 + (xs - 33.5) ** 2 < 15.0**2] = 1
    box = torch.tensor([[18.0, 15.0, 49.0, 46.0]])
    restored = paste_masks(crop_masks(disk, box, 16), box, (64, 64)) > 0.5
    iou = (restored & disk.bool()).sum() / (restored | disk.bool()).sum()
    assert iou > 0.95


def test_paste_is_differentiable_in_the_crop():
    crop = torch.zeros(1, 2, 2, requires_grad=True)
    paste_masks(crop, torch.tensor([[0.0, 0.0, 4.0, 2.0]]), (2, 4)).sum().backward()
    # Each crop column collects the weights of the pixels it feeds: 1 + 0.75 + 0.25 per row.
    assert torch.allclose(crop.grad, torch.full((1, 2, 2), 2.0))


def test_jitter_is_seeded_bounded_and_inside_the_image():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 50.0, 40.0]])
    first = jitter_boxes(boxes, (64, 64), 0.1, torch.Generator().manual_seed(3))
    again = jitter_boxes(boxes, (64, 64), 0.1, torch.Generator().manual_seed(3))
    other = jitter_boxes(boxes, (64, 64), 0.1, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    sides = torch.tensor([[20.0, 40.0, 20.0, 40.0], [50.0, 40.0, 50.0, 40.0]])
    assert ((first - boxes).abs() <= 0.1 * sides + 1e-6).all()
    assert (first >= 0).all() and (first <= 64).all()
    assert torch.equal(jitter_boxes(boxes, (64, 64), 0.0), boxes)
    with pytest.raises(ValueError, match="max_shift"):
        jitter_boxes(boxes, (64, 64), -0.1)


def test_mask_boxes_are_tight_pixel_corners_and_differ_only_for_an_empty_mask():
    masks = torch.zeros(2, 5, 6)
    masks[0, 1:3, 2:5] = 0.9
    assert mask_boxes_or_zero(masks).tolist() == [[2.0, 1.0, 5.0, 3.0], [0.0, 0.0, 0.0, 0.0]]  # as pycocotools
    assert mask_boxes_or_image(masks).tolist() == [[2.0, 1.0, 5.0, 3.0], [0.0, 0.0, 6.0, 5.0]]  # the whole image
    x, y, w, h = mask_bbox(masks[0].numpy() > 0.5)
    assert [x, y, x + w, y + h] == mask_boxes_or_zero(masks)[0].tolist()
    assert mask_boxes_or_zero(masks, threshold=0.95).tolist() == [[0.0, 0.0, 0.0, 0.0]] * 2
