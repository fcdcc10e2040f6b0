"""Who occludes whom: the relation on hand-made masks, the loop reference, the depth order, the accuracy."""

from __future__ import annotations

import pytest
import torch

from a3d_core.data.canonical import encode_mask
from a3d_core.data.prepare_real import RealPrepareRequest, prepare_real
from a3d_core.eval.occlusion_order import (
    OrderAccuracy,
    depth_order,
    depth_rank,
    ground_truth_depths,
    match_instances,
    occlusion_relation,
    order_accuracy,
    relation_record,
    true_pairs,
)
from tests.data.formats_fixtures import cocoa_files, kins2020_files

SIZE = 12


def _box(top: int, left: int, bottom: int, right: int) -> torch.Tensor:
    """``(SIZE, SIZE)`` bool: rows ``top:bottom``, columns ``left:right``."""
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


def _painted(amodal: list[torch.Tensor], front_to_back: list[int]) -> torch.Tensor:
    """``(K, SIZE, SIZE)`` visible masks of ``amodal`` painted in ``front_to_back`` order."""
    visible = torch.zeros(len(amodal), SIZE, SIZE, dtype=torch.bool)
    taken = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    for k in front_to_back:
        visible[k] = amodal[k] & ~taken
        taken |= amodal[k]
    return visible


def reference_covered(amodal: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """``(K, K)``: pixels of j's hidden part under i's visible mask, one pixel at a time."""
    count = amodal.shape[0]
    covered = torch.zeros(count, count, dtype=torch.long)
    for i in range(count):
        for j in range(count):
            for y in range(amodal.shape[1]):
                for x in range(amodal.shape[2]):
                    hidden = bool(amodal[j, y, x]) and not bool(visible[j, y, x])
                    covered[i, j] += int(hidden and bool(visible[i, y, x]))
    return covered


def test_a_in_front_of_b():
    amodal = torch.stack([_box(2, 2, 8, 8), _box(4, 4, 10, 10)])
    relation = occlusion_relation(amodal, _painted(list(amodal), [0, 1]))
    assert relation.occludes.tolist() == [[False, True], [False, False]]
    assert relation.covered[0, 1] == 16 and relation.confidence[0, 1] == 1.0
    assert relation.pairs() == [(0, 1, 1.0, 16)]
    assert depth_order(relation).tolist() == [0, 1]


def test_chain_a_b_c_is_ordered_whatever_the_indices():
    amodal = torch.stack([_box(4, 4, 8, 8), _box(0, 0, 6, 6), _box(6, 6, 12, 12)])  # B, A, C
    relation = occlusion_relation(amodal, _painted(list(amodal), [1, 0, 2]))
    assert set((i, j) for i, j, _, _ in relation.pairs()) == {(1, 0), (0, 2)}
    order = depth_order(relation)
    assert order.tolist() == [1, 0, 2]
    assert depth_rank(order).tolist() == [1, 0, 2]


def test_a_cycle_is_broken_at_its_weakest_link():
    # Three bands: 0 hides 9 pixels of 1, 1 hides 9 of 2, 2 hides 1 of 0; the order drops 2 over 0.
    visible = torch.stack([_box(0, 0, 4, SIZE), _box(4, 0, 8, SIZE), _box(8, 0, SIZE, SIZE)])
    amodal = visible | torch.stack([_box(8, 0, 9, 1), _box(0, 0, 3, 3), _box(4, 0, 7, 3)])
    relation = occlusion_relation(amodal, visible)
    assert set((i, j, pixels) for i, j, _, pixels in relation.pairs()) == {(0, 1, 9), (1, 2, 9), (2, 0, 1)}
    assert depth_order(relation).tolist() == [0, 1, 2]


def test_no_overlap_no_relation_and_index_order():
    amodal = torch.stack([_box(0, 0, 4, 4), _box(6, 6, 10, 10)])
    relation = occlusion_relation(amodal, amodal.clone())
    assert not relation.occludes.any() and relation.pairs() == []
    record = relation_record(relation)
    assert record == {"instances": 2, "pairs": [], "depth_order": [0, 1], "depth_rank": [0, 1]}


def test_contested_pair_confidence_and_min_pixels():
    amodal = torch.stack([_box(0, 0, 6, 6), _box(0, 3, 6, 9)])
    visible = amodal.clone()
    visible[1, 0:4, 3:6] = False  # 12 pixels of 1 under 0
    visible[0, 4:6, 3:6] = False  # 6 pixels of 0 under 1
    relation = occlusion_relation(amodal, visible)
    assert relation.pairs() == [(0, 1, pytest.approx(12 / 18), 12)]
    assert not occlusion_relation(amodal, visible, min_pixels=13).occludes.any()


def test_fast_relation_matches_the_loop_reference():
    generator = torch.Generator().manual_seed(3)
    amodal = torch.rand(4, 7, 9, generator=generator) > 0.4
    visible = amodal & (torch.rand(4, 7, 9, generator=generator) > 0.5)
    probabilities = visible.float() * 0.8 + 0.1
    relation = occlusion_relation(amodal.float(), probabilities)
    reference = reference_covered(amodal, visible)
    assert torch.equal(relation.covered, reference)
    assert torch.equal(relation.occludes, (reference > reference.T) & (reference > 0))


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="both be"):
        occlusion_relation(torch.zeros(2, 4, 4), torch.zeros(3, 4, 4))


def test_ground_truth_depths_read_each_annotation():
    assert ground_truth_depths([{"depth_order": 1}, {"depth_order": 0}]) == ("depth_order", [(0, 1.0), (0, 0.0)])
    cocoa = [{"source": {"order": 2}}, {"source": {"isStuff": 0}}]
    assert ground_truth_depths(cocoa) == ("cocoa order", [(0, 2.0), None])
    kins = [{"source": {"oco_id": 3, "ico_id": 2}}, {"source": {"oco_id": 4, "ico_id": 0}}]
    assert ground_truth_depths(kins) == ("kins2020 ico_id", [(3, 2.0), None])
    assert ground_truth_depths([{"id": 1}]) == ("", [None])


def test_true_pairs_need_overlap_and_an_order():
    amodal = torch.stack([_box(0, 0, 6, 6), _box(3, 3, 9, 9), _box(9, 9, 12, 12), _box(0, 6, 3, 12)])
    visible = _painted(list(amodal), [1, 0, 2, 3])
    depths = [(0, 1.0), (0, 0.0), (0, 2.0), None]
    assert true_pairs(amodal, visible, depths) == [(1, 0)]
    assert true_pairs(amodal, visible, [(0, 1.0), (1, 0.0), (0, 2.0), None]) == []  # other cluster


def test_match_instances_is_greedy_by_score_order():
    # prediction 1 (IoU 0.75 with ground truth 0) comes before prediction 2 (IoU 1) and takes it
    iou = torch.tensor([[0.0, 1.0], [0.75, 0.0], [1.0, 0.0], [0.3, 0.0]])
    assert match_instances(iou) == [1, 0]
    assert match_instances(iou, threshold=0.8) == [2, 0]
    assert match_instances(torch.zeros(0, 2)) == [None, None]


def _annotation(image_id: int, amodal: torch.Tensor, visible: torch.Tensor, **extra) -> dict:
    return {
        "image_id": image_id,
        "segmentation": encode_mask(amodal.numpy()),
        "visible_mask": encode_mask(visible.numpy()),
        **extra,
    }


def test_order_accuracy_against_a_hand_count():
    # Image 1: chain 1 > 0 > 2 (two true pairs). Image 2: 0 in front of 1, and an isolated 2.
    chain = [_box(4, 4, 8, 8), _box(0, 0, 6, 6), _box(6, 6, 12, 12)]
    chain_visible = _painted(chain, [1, 0, 2])
    pair = [_box(2, 2, 8, 8), _box(4, 4, 10, 10), _box(0, 10, 2, 12)]
    pair_visible = _painted(pair, [0, 1, 2])
    images = [{"id": 1, "height": SIZE, "width": SIZE}, {"id": 2, "height": SIZE, "width": SIZE}]
    annotations = [_annotation(1, chain[k], chain_visible[k], depth_order=[1, 0, 2][k]) for k in range(3)]
    annotations += [_annotation(2, pair[k], pair_visible[k], depth_order=k) for k in range(3)]

    def prediction(image_id, amodal, visible, score):
        return {"image_id": image_id, "score": score, **_annotation(image_id, amodal, visible)}

    wrong = _painted(chain, [0, 1, 2])  # predicts 0 in front of 1 (wrong), 0 in front of 2 (right)
    predictions = [prediction(1, chain[k], wrong[k], 0.9 - 0.1 * k) for k in range(3)]
    predictions += [prediction(2, pair[0], pair_visible[0], 0.9)]  # instance 1 of image 2 is missed
    result = order_accuracy(images, annotations, predictions)
    assert isinstance(result, OrderAccuracy)
    assert (result.source, result.pairs, result.matched, result.correct, result.unordered) == (
        "depth_order",
        3,
        2,
        1,
        0,
    )
    assert result.accuracy == 0.5 and result.accuracy_all_pairs == 1 / 3

    oracle = [{"score": 1.0, **a} for a in annotations]
    assert order_accuracy(images, annotations, oracle).accuracy == 1.0


def test_order_accuracy_says_why_it_is_unavailable():
    images = [{"id": 1, "height": SIZE, "width": SIZE}]
    plain = [_annotation(1, _box(0, 0, 4, 4), _box(0, 0, 4, 4))]
    assert "no occlusion order" in order_accuracy(images, plain, [])
    ordered = [_annotation(1, _box(0, 0, 4, 4), _box(0, 0, 4, 4), depth_order=0)]
    no_visible = [{"image_id": 1, "score": 1.0, "segmentation": ordered[0]["segmentation"]}]
    assert "no 'visible_mask' (entry 0)" in order_accuracy(images, ordered, no_visible)


@pytest.mark.parametrize(
    ("layout", "files", "source"),
    [("cocoa", cocoa_files, "cocoa order"), ("kins2020", kins2020_files, "kins2020 ico_id")],
)
def test_prepared_order_annotations_reach_the_metric(tmp_path, layout, files, source):
    annotation_file, images = files(tmp_path / "src")
    request = RealPrepareRequest(layout, (annotation_file,), images, split="val", out_dir=tmp_path / "out")
    split = prepare_real(request).dataset.load_split("val")
    oracle = [{"score": 1.0, **a} for a in split.annotations]
    result = order_accuracy(split.images, split.annotations, oracle)
    assert isinstance(result, OrderAccuracy) and result.source == source
    assert result.pairs == 0 and result.accuracy == -1.0  # the fixtures' regions do not overlap: no pair to score
