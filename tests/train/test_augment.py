"""Horizontal flips: per object and epoch, the same for all views of an object, reproducible."""

import numpy as np
import torch

from a3d_core.train.augment import HorizontalFlips, flip_view
from a3d_core.train.cross_view import CrossViewPairs


class Views(torch.utils.data.Dataset):
    """Six views of three objects; each image is its own index in a corner, so flips show."""

    categories = ["thing"]

    def __init__(self):
        self.object_index = np.array([0, 0, 1, 1, 2, 2])

    def __len__(self):
        return 6

    def __getitem__(self, index):
        image = torch.zeros(1, 4, 4)
        image[0, 0, 0] = index + 1
        return {
            "rgb": image.repeat(3, 1, 1),
            "visible": image.clone(),
            "amodal": image.clone(),
            "category": torch.tensor(0),
            "view_id": torch.tensor(3),
        }


def test_flip_view_mirrors_images_and_the_view():
    sample = Views()[1]
    flipped = flip_view(sample)
    assert flipped["amodal"][0, 0, 3] == 2 and flipped["amodal"][0, 0, 0] == 0
    assert int(flipped["view_id"]) == 21 and torch.equal(flip_view(flipped)["rgb"], sample["rgb"])


def test_views_of_one_object_flip_together_and_epochs_differ():
    flips = HorizontalFlips(Views(), seed=4)
    seen = []
    for epoch in range(12):
        flips.set_epoch(epoch)
        states = [bool(flips[i]["amodal"][0, 0, 3] > 0) for i in range(6)]
        assert states == [flips.flipped(i) for i in range(6)]
        assert states[0] == states[1] and states[2] == states[3] and states[4] == states[5]
        seen.append(tuple(states[::2]))
    assert len(set(seen)) > 2  # the draw changes with the epoch
    again = HorizontalFlips(Views(), seed=4)
    again.set_epoch(5)
    flips.set_epoch(5)
    assert [again.flipped(i) for i in range(6)] == [flips.flipped(i) for i in range(6)]
    assert flips.categories == ["thing"]


def test_cross_view_pairs_of_flipped_views_are_flipped_alike():
    pairs = CrossViewPairs(HorizontalFlips(Views(), seed=1), seed=2)
    for epoch in range(6):
        pairs.set_epoch(epoch)
        for index in range(6):
            item = pairs[index]
            assert bool(item["amodal"][0, 0, 3] > 0) == bool(item["amodal_pair"][0, 0, 3] > 0)


def test_flips_flip_the_occluder_with_the_view_and_pairs_carry_it():
    class Occluded(Views):
        def __getitem__(self, index):
            item = super().__getitem__(index)
            item["occluder"] = torch.zeros(1, 4, 4)
            item["occluder"][0, :, 0] = index + 1  # the left column, marked by the view
            return item

    sample = Occluded()[2]
    flipped = flip_view(sample)
    assert torch.equal(flipped["occluder"], torch.flip(sample["occluder"], dims=(-1,)))
    assert flipped["occluder"][0, :, 3].tolist() == [3, 3, 3, 3] and not flipped["occluder"][0, :, 0].any()
    assert "occluder" not in flip_view(Views()[2])
    pairs = CrossViewPairs(HorizontalFlips(Occluded(), probability=1.0))
    item = pairs[0]
    partner = pairs.partner(0)
    assert torch.equal(item["occluder_pair"][0, :, 3], torch.full((4,), float(partner + 1)))
