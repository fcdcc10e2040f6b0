"""Deocclusion's view of a dataset: mask-only inputs, and pairs made of visible masks alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from a3d_core.data.modal_views import ClassAgnosticViews, ConcatViews, DeocclusionPairs, MaskOnlyViews
from a3d_core.data.prepare_modal import ModalPairSettings

SIZE = 24


class FakeViews(Dataset):
    """Views whose amodal mask is a box, hidden on its right by a pasted occluder; view ``i`` is of
    category ``i % 2`` of ``categories``."""

    def __init__(self, count: int = 6, has_occluder: bool = True, categories: tuple = ("thing", "other")) -> None:
        self.has_occluder = has_occluder
        self.categories = list(categories)
        self.items = []
        for i in range(count):
            amodal = torch.zeros(1, SIZE, SIZE)
            amodal[:, 4 : 16 + i, 3 : 17 + i] = 1
            occluder = torch.zeros(1, SIZE, SIZE)
            occluder[:, :, 12 + i :] = 1
            item = {"amodal": amodal, "visible": amodal * (1 - occluder), "rgb": torch.rand(3, SIZE, SIZE)}
            item |= {"category": torch.tensor(i % 2), "object_index": torch.tensor(i)}
            if has_occluder:
                item["occluder"] = occluder
            self.items.append(item)
        self.object_index = np.arange(count)
        self.view_id = np.zeros(count, np.int64)
        self.elevation = self.azimuth = np.full(count, 30.0)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


def test_mask_only_views_give_visible_and_occluder_as_the_rgb_and_keep_the_target() -> None:
    views = FakeViews()
    item = MaskOnlyViews(views)[2]
    original = views[2]
    assert torch.equal(item["rgb"][0], original["visible"][0]) and torch.equal(item["rgb"][1], original["occluder"][0])
    assert not item["rgb"][2].any() and torch.equal(item["amodal"], original["amodal"])
    assert MaskOnlyViews(views).categories == ["thing", "other"]
    with pytest.raises(ValueError, match="occluder"):
        MaskOnlyViews(FakeViews(has_occluder=False))


def test_pairs_learn_the_visible_mask_never_the_amodal_one() -> None:
    views = FakeViews()
    pairs = DeocclusionPairs(views, seed=3, always_front=True)
    for index in range(len(views)):
        item, original = pairs[index], views[index]
        target, given, eraser = item["amodal"][0].bool(), item["visible"][0].bool(), item["occluder"][0].bool()
        assert torch.equal(target, original["visible"][0].bool())
        assert not torch.equal(target, original["amodal"][0].bool())
        assert bool((given <= target).all()) and given.sum() < target.sum()  # the eraser hides part of it
        assert torch.equal(given, target & ~eraser)
        assert not (eraser & original["occluder"][0].bool()).any()  # the view's own occluder stays in front
        assert torch.equal(item["rgb"][0].bool(), given) and torch.equal(item["rgb"][1].bool(), eraser)
        rate = 1 - given.sum().item() / target.sum().item()
        assert item["occlusion_rate"].item() == pytest.approx(rate)


def test_pairs_are_drawn_again_each_epoch_and_reproducibly() -> None:
    pairs = DeocclusionPairs(FakeViews(), seed=0)
    first = [pairs[i]["visible"] for i in range(6)]
    assert all(torch.equal(a, pairs[i]["visible"]) for i, a in enumerate(first))
    pairs.set_epoch(1)
    assert any(not torch.equal(a, pairs[i]["visible"]) for i, a in enumerate(first))


def test_an_eraser_behind_leaves_the_input_whole() -> None:
    settings = ModalPairSettings(eraser_front_prob=0.0)
    pairs = DeocclusionPairs(FakeViews(), settings)
    item = pairs[1]
    assert torch.equal(item["visible"], item["amodal"]) and item["occlusion_rate"].item() == 0.0
    assert not (item["occluder"].bool() & item["amodal"].bool()).any()


def test_a_mask_too_small_to_erase_is_served_whole() -> None:
    views = FakeViews()
    tiny = torch.zeros(1, SIZE, SIZE)
    tiny[0, 5, 5] = 1
    views.items[0] = {**views.items[0], "visible": tiny}
    item = DeocclusionPairs(views, always_front=True)[0]
    assert torch.equal(item["visible"], tiny) and torch.equal(item["amodal"], tiny) and not item["occluder"].any()


def test_class_agnostic_views_put_every_item_in_the_one_category() -> None:
    views = FakeViews()
    agnostic = ClassAgnosticViews(MaskOnlyViews(views))
    assert agnostic.categories == ["object"] and views.categories == ["thing", "other"]
    assert [int(agnostic[i]["category"]) for i in range(6)] == [0] * 6
    assert [int(views[i]["category"]) for i in range(6)] == [0, 1, 0, 1, 0, 1]  # the wrapped views are untouched
    assert torch.equal(agnostic[3]["rgb"][1], views[3]["occluder"][0]) and agnostic.has_occluder


def test_concatenated_views_keep_their_objects_apart() -> None:
    first, second = ClassAgnosticViews(FakeViews(3)), ClassAgnosticViews(FakeViews(4, has_occluder=False))
    both = ConcatViews(first, second)
    assert len(both) == 7 and both.categories == ["object"] and not both.has_occluder
    assert both.object_index.tolist() == [0, 1, 2, 3, 4, 5, 6] and first.object_index.tolist() == [0, 1, 2]
    assert [int(both[i]["object_index"]) for i in range(7)] == both.object_index.tolist()
    assert torch.equal(both[4]["amodal"], second[1]["amodal"]) and torch.equal(both[-1]["amodal"], second[3]["amodal"])
    assert len(both.view_id) == len(both.elevation) == 7
    assert ConcatViews(first, first).has_occluder
    with pytest.raises(IndexError):
        both[7]
    with pytest.raises(ValueError, match="same categories"):
        ConcatViews(first, FakeViews(2))
