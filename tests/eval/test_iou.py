"""Box and mask IoU: hand-computed values, COCO's crowd rule, and agreement with pycocotools."""

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from a3d_core.eval.iou import box_iou, mask_intersections, pairwise_mask_iou
from a3d_core.eval.masks import rle_areas, to_rle
from a3d_core.eval.rle_runs import CountsError, parse_runs, run_intersections


def test_box_iou_by_hand():
    dt = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [5.0, 5.0, 1.0, 1.0]], dtype=torch.float64)
    gt = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 2.0, 4.0]], dtype=torch.float64)
    iou = box_iou(dt, gt, torch.tensor([False, True]))
    # det 1 vs gt 0: overlap 1x1 = 1, union 4 + 4 - 1 = 7. Crowd gt 1 (x 1..3, y 0..4): overlap /
    # det area, det 0 has 2 of its 4 inside, det 1 all 4.
    expected = torch.tensor([[1.0, 2.0 / 4.0], [1.0 / 7.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    assert torch.equal(iou, expected)


def test_box_iou_touching_boxes_is_zero_and_matches_pycocotools():
    rng = np.random.default_rng(0)
    dt = np.round(rng.uniform(0, 20, (30, 4)), 1)
    gt = np.round(rng.uniform(0, 20, (7, 4)), 1)
    gt[0] = [dt[0, 0] + dt[0, 2], dt[0, 1], 3, 3]  # touches det 0 on its right edge
    crowd = [0, 1, 0, 0, 1, 0, 0]
    ours = box_iou(torch.from_numpy(dt), torch.from_numpy(gt), torch.tensor(crowd, dtype=torch.bool))
    theirs = mask_utils.iou(dt.tolist(), gt.tolist(), crowd)
    assert ours[0, 0] == 0.0
    assert np.array_equal(ours.numpy(), theirs)


def _random_masks(rng, count, height, width):
    masks = np.zeros((count, height, width), np.uint8)
    for mask in masks[1:]:
        y, x = rng.integers(0, height), rng.integers(0, width)
        mask[y : y + rng.integers(1, height), x : x + rng.integers(1, width)] = 1
        mask ^= (rng.random((height, width)) < 0.1).astype(np.uint8)
    return masks  # mask 0 stays empty


def test_pairwise_mask_iou_by_hand_with_crowd():
    a = torch.zeros(1, 4, 4)
    a[0, :2, :] = 1  # 8 pixels
    b = torch.zeros(2, 4, 4)
    b[0, 1:3, :] = 1  # overlaps a in 4 pixels, union 12
    b[1] = 1  # crowd: 8 of a's 8 pixels inside
    iou = pairwise_mask_iou(a, b, torch.tensor([False, True]))
    assert torch.equal(iou, torch.tensor([[4 / 12, 1.0]], dtype=torch.float64))


def test_dense_and_run_intersections_equal_pycocotools_iou():
    rng = np.random.default_rng(1)
    height, width = 23, 31
    dt = _random_masks(rng, 12, height, width)
    gt = _random_masks(rng, 5, height, width)
    crowd = [0, 1, 0, 0, 1]
    dt_rles = mask_utils.encode(np.asfortranarray(dt.transpose(1, 2, 0)))
    gt_rles = mask_utils.encode(np.asfortranarray(gt.transpose(1, 2, 0)))
    theirs = mask_utils.iou(dt_rles, gt_rles, crowd)

    dense = pairwise_mask_iou(torch.from_numpy(dt), torch.from_numpy(gt), torch.tensor(crowd, dtype=torch.bool))
    assert np.array_equal(dense.numpy(), theirs)

    dt_runs, gt_runs = parse_runs(dt_rles), parse_runs(gt_rles)
    assert np.array_equal(dt_runs.area.numpy(), dt.reshape(12, -1).sum(1))
    d_index = torch.arange(12).repeat_interleave(5)
    g_index = torch.arange(5).repeat(12)
    from_runs = run_intersections(dt_runs, gt_runs, d_index, g_index, height * width, chunk=7)
    expected = torch.from_numpy(dt.reshape(12, -1).astype(np.int64) @ gt.reshape(5, -1).T.astype(np.int64))
    assert torch.equal(from_runs.reshape(12, 5), expected)


def test_intersections_are_exact_beyond_float32_chunk(monkeypatch):
    monkeypatch.setattr("a3d_core.eval.iou.EXACT_FLOAT32_SUM", 5)
    d = torch.ones(2, 12)
    g = torch.ones(3, 12)
    g[0, :7] = 0
    assert torch.equal(mask_intersections(d, g), torch.tensor([[5, 12, 12]] * 2))


def test_to_rle_follows_annToRLE_for_polygons_and_integer_counts():
    polygon = [[1.0, 1.0, 1.0, 5.0, 6.0, 5.0, 6.0, 1.0]]
    rle = to_rle(polygon, 8, 9)
    expected = mask_utils.merge(mask_utils.frPyObjects(polygon, 8, 9))
    assert rle["counts"] == expected["counts"]
    uncompressed = {"size": [3, 2], "counts": [1, 4, 1]}
    assert rle_areas([to_rle(uncompressed, 3, 2)])[0] == 4.0
    with pytest.raises(ValueError, match="differs from the image size"):
        to_rle({"size": [4, 4], "counts": "04"}, 3, 3)


def test_parse_runs_rejects_a_truncated_counts_string():
    with pytest.raises(ValueError, match="ends inside a number"):
        parse_runs([{"size": [4, 4], "counts": b"0h"}])  # 'h' (= 56) has the continuation bit


@pytest.mark.parametrize(
    "counts, problem",
    [
        (b"~~0b9", "outside the compressed alphabet"),
        (b"0h", "ends inside a number"),
        (b"", "empty RLE counts string"),
        (b"53F3", "negative run length"),
    ],  # 53F3: counts 5, 3, then 5 - 10
)
def test_a_malformed_counts_string_is_named_by_its_position(counts, problem):
    good = mask_utils.encode(np.asfortranarray(np.eye(4, dtype=np.uint8)))
    rles = [good] * 600 + [{"size": [4, 4], "counts": counts}] + [good]  # past the first parsing batch of 512
    with pytest.raises(CountsError, match=problem) as raised:
        parse_runs(rles)
    assert raised.value.index == 600
