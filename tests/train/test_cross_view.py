"""Cross-view pairs: another view of the same object, seeded, changing with the epoch."""

import numpy as np
import pytest
import torch

from a3d_core.errors import InputError
from a3d_core.train.cross_view import CrossViewPairs
from tests.train.toys import ToyAmodalDataset


def test_each_item_is_paired_with_another_view_of_its_object():
    dataset = ToyAmodalDataset(objects=4, views=3)
    pairs = CrossViewPairs(dataset, seed=0)
    for index in range(len(pairs)):
        partner = pairs.partner(index)
        assert partner != index
        assert dataset.object_index[partner] == dataset.object_index[index]
        item = pairs[index]
        assert torch.equal(item["rgb_pair"], dataset[partner]["rgb"])
        assert torch.equal(item["amodal_pair"], dataset[partner]["amodal"])
        assert torch.equal(item["visible_pair"], dataset[partner]["visible"])
        assert item["category_pair"] == item["category"]
        assert torch.equal(item["rgb"], dataset[index]["rgb"])


def test_pairing_is_seeded_and_changes_with_the_epoch():
    dataset = ToyAmodalDataset(objects=3, views=6)
    first, again, other_seed = (
        CrossViewPairs(dataset, seed=1),
        CrossViewPairs(dataset, seed=1),
        CrossViewPairs(dataset, seed=2),
    )
    partners = [first.partner(i) for i in range(len(dataset))]
    assert partners == [again.partner(i) for i in range(len(dataset))]
    assert partners != [other_seed.partner(i) for i in range(len(dataset))]
    first.set_epoch(1)
    assert partners != [first.partner(i) for i in range(len(dataset))]
    first.set_epoch(0)
    assert partners == [first.partner(i) for i in range(len(dataset))]


def test_a_single_view_object_pairs_with_itself_and_a_missing_object_index_is_an_error():
    dataset = ToyAmodalDataset(objects=2, views=1)
    assert [CrossViewPairs(dataset).partner(i) for i in range(2)] == [0, 1]
    dataset.object_index = np.zeros(5)
    with pytest.raises(InputError, match=r"object_index has shape \(5,\), expected \(2,\)"):
        CrossViewPairs(dataset)
    del dataset.object_index
    with pytest.raises(InputError, match="need an object_index"):
        CrossViewPairs(dataset)
