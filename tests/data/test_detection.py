import numpy as np
import pytest
import torch

from a3d_core.data.canonical import encode_mask
from a3d_core.data.detection import AmodalDetectionDataset, CategoryMapping, collate_detection, instance_targets
from a3d_core.errors import InputError
from tests.data.amodal_scene import (
    BOX_A,
    BOX_B,
    HEIGHT,
    WIDTH,
    png_bytes,
    scene_image,
    scene_masks,
    write_scene_dataset,
)


@pytest.fixture()
def dataset(tmp_path):
    return write_scene_dataset(tmp_path / "scene")


def test_item_holds_amodal_boxes_visible_and_amodal_masks(dataset):
    image, target = AmodalDetectionDataset(dataset, "train")[0]
    masks = scene_masks()

    assert image.shape == (3, HEIGHT, WIDTH) and image.dtype == torch.float32
    assert torch.allclose(image[:, 0, 0], torch.full((3,), 128 / 255))
    assert torch.allclose(image[:, 30, 15], torch.tensor([220, 40, 40]) / 255)
    # A (category 7 -> label 2) then B (category 3 -> label 1); the crowd region is left out.
    assert target["boxes"].tolist() == [list(BOX_A), list(BOX_B)]
    assert target["labels"].tolist() == [2, 1] and target["labels"].dtype == torch.int64
    assert target["masks"].dtype == torch.uint8
    assert np.array_equal(target["masks"][0].numpy(), masks["visible_a"])
    assert np.array_equal(target["amodal_masks"][0].numpy(), masks["amodal_a"])
    assert int(target["masks"][0].sum()) == 1200 and int(target["amodal_masks"][0].sum()) == 1600
    assert target["occlusion_rate"].tolist() == pytest.approx([0.25, 0.0])
    assert target["iscrowd"].tolist() == [0, 0]
    assert target["image_id"] == 5


def test_crowd_regions_are_kept_when_asked(dataset):
    _, target = AmodalDetectionDataset(dataset, "train", skip_crowd=False)[0]
    assert target["iscrowd"].tolist() == [0, 0, 1]
    assert target["boxes"][2].tolist() == [100.0, 0.0, 120.0, 10.0]


def test_category_mapping_follows_ids_not_json_order(dataset):
    categories = AmodalDetectionDataset(dataset, "train").categories
    assert categories.category_ids == (3, 7) and categories.names == ("cup", "box")
    assert categories.num_classes == 2
    assert [categories.label(3), categories.label(7)] == [1, 2]
    assert [categories.category_id(1), categories.name(2)] == [3, "box"]
    with pytest.raises(InputError, match="category id 4"):
        categories.label(4)
    with pytest.raises(ValueError, match="outside 1..2"):
        categories.name(0)
    with pytest.raises(InputError, match="listed twice"):
        CategoryMapping.from_categories([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}])


def test_thin_amodal_boxes_are_dropped_and_a_missing_occlusion_rate_is_computed():
    line = np.zeros((8, 8), np.uint8)
    line[2:6, 3] = 1  # one pixel wide is still a box
    top = line.copy()
    top[4:] = 0  # 2 of the 4 pixels visible
    annotation = {
        "id": 1,
        "category_id": 1,
        "bbox": [3, 2, 1, 4],
        "segmentation": encode_mask(line),
        "visible_mask": encode_mask(top),
    }
    thin = dict(annotation, bbox=[3, 2, 0.5, 4])
    target = instance_targets([annotation, thin], 8, 8, lambda category_id: category_id)
    assert target["boxes"].tolist() == [[3.0, 2.0, 4.0, 6.0]]
    assert target["occlusion_rate"].tolist() == [0.5]
    empty = instance_targets([], 8, 8, lambda category_id: category_id)
    assert empty["boxes"].shape == (0, 4) and empty["masks"].shape == (0, 8, 8) and empty["labels"].shape == (0,)


def test_collate_keeps_images_and_targets_as_lists(dataset):
    data = AmodalDetectionDataset(dataset, "train")
    images, targets = collate_detection([data[0], data[0]])
    assert len(images) == 2 and len(targets) == 2
    assert torch.equal(images[0], images[1]) and targets[1]["image_id"] == 5


def test_image_of_the_wrong_size_is_reported(dataset):
    (dataset.image_root / "scene.png").write_bytes(png_bytes(scene_image()[:50]))
    with pytest.raises(InputError, match=r"scene.png: image is 128x50 but train.json says 128x96"):
        AmodalDetectionDataset(dataset, "train")[0]


def test_missing_image_is_reported(dataset):
    (dataset.image_root / "scene.png").unlink()
    with pytest.raises(InputError, match="scene.png: file not found"):
        AmodalDetectionDataset(dataset, "train")[0]
