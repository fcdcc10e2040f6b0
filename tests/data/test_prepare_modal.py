"""Deocclusion-style pairs from modal masks: the target is the full modal mask, the input what the pasted
eraser leaves, a real neighbour stays in front of the eraser, and no image is in two splits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from a3d_core.data.canonical import encode_mask
from a3d_core.data.occlusion import OcclusionGenerator, OcclusionSettings
from a3d_core.data.prepare_modal import (
    ERASER_ONLY,
    PrepareModalConfig,
    build_pair,
    prepare_modal,
    prepared_modal_pairs,
    split_images,
    touching_neighbours,
)
from a3d_core.data.shapenet import ShapeNetAmodalDataset
from a3d_core.errors import InputError

SIZE = 32


def _generator(bank_mask: np.ndarray) -> OcclusionGenerator:
    settings = OcclusionSettings(min_rate=0.2, max_rate=0.6, kind_weights=ERASER_ONLY)
    return OcclusionGenerator(settings, [(np.zeros((3, SIZE, SIZE), np.float32), bank_mask)])


def _block(top: int, left: int, height: int, width: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[top : top + height, left : left + width] = True
    return mask


def test_the_target_is_the_full_modal_mask_and_the_input_what_the_eraser_leaves() -> None:
    modal = _block(8, 8, 16, 16)
    pair = build_pair(modal, np.zeros_like(modal), _generator(_block(4, 4, 24, 24)), np.random.default_rng(0), True)
    assert np.array_equal(pair.modal, modal)
    assert pair.eraser.any() and np.array_equal(pair.visible, modal & ~pair.eraser)
    assert 0.2 - 0.05 <= pair.occlusion_rate <= 0.6 and pair.occlusion_rate == pytest.approx(
        1 - pair.visible.sum() / 256
    )
    # mask-only RGB: (visible, eraser, 0)
    assert (
        np.array_equal(pair.rgb[0], pair.visible) and np.array_equal(pair.rgb[1], pair.eraser) and not pair.rgb[2].any()
    )


def test_an_eraser_behind_the_instance_leaves_it_whole() -> None:
    modal = _block(8, 8, 16, 16)
    pair = build_pair(modal, np.zeros_like(modal), _generator(_block(4, 4, 24, 24)), np.random.default_rng(0), False)
    assert np.array_equal(pair.visible, modal) and pair.occlusion_rate == 0.0
    assert pair.eraser.any() and not (pair.eraser & modal).any()


def test_a_real_neighbour_stays_in_front_of_the_eraser() -> None:
    modal = _block(8, 4, 16, 12)  # columns 4..15
    neighbour = _block(6, 16, 20, 10)  # touches it on the right, columns 16..25
    generator = _generator(np.ones((SIZE, SIZE), bool))  # an eraser that covers whatever it is slid over
    for seed in range(5):
        pair = build_pair(modal, neighbour, generator, np.random.default_rng(seed), True)
        assert pair.eraser.any() and not (pair.eraser & neighbour).any()
        assert np.array_equal(pair.visible, modal & ~pair.eraser) and np.array_equal(pair.modal, modal)


def test_neighbours_are_the_instances_touching_the_mask_inside_its_box() -> None:
    own = _block(8, 8, 8, 8)
    touching = _block(8, 16, 8, 4)  # one pixel right of it
    overlapping = _block(14, 4, 6, 6)
    apart = _block(8, 22, 8, 4)  # two pixels and more away
    masks = np.stack([own, touching, overlapping, apart])
    assert np.array_equal(touching_neighbours(masks, 0, [8, 8, 8, 8]), touching | overlapping)


def test_images_are_split_whole_and_reproducibly() -> None:
    splits = split_images(list(range(100)), (0.7, 0.1, 0.2), seed=3)
    assert sorted(splits) == list(range(100)) and splits == split_images(list(range(100)), (0.7, 0.1, 0.2), seed=3)
    counts = {name: sum(1 for s in splits.values() if s == name) for name in ("train", "val", "test")}
    assert counts == {"train": 70, "val": 10, "test": 20}
    assert split_images(list(range(100)), (0.7, 0.1, 0.2), seed=4) != splits
    assert split_images([1, 2], (0.7, 0.1, 0.2), seed=0) == {1: "train", 2: "train"}
    assert sorted(split_images([1, 2, 3], (0.7, 0.1, 0.2), seed=0).values()) == ["test", "train", "val"]


def _coco(path: Path, images: int) -> Path:
    """``images`` 48 x 40 images, each with two touching boxes, plus a crowd, a bad and an empty entry."""
    annotations = []
    for i in range(images):
        for k, (x, y) in enumerate([(4, 6), (20, 10)]):
            annotations.append(
                {
                    "id": 10 * i + k + 1,
                    "image_id": i + 1,
                    "category_id": 1 + k,
                    "iscrowd": 0,
                    "segmentation": [[x, y, x + 16 + i % 3, y, x + 16, y + 20, x, y + 20]],
                }
            )
    crowd = np.zeros((40, 48), np.uint8)
    crowd[30:38, 0:10] = 1
    annotations += [
        {"id": 9001, "image_id": 1, "category_id": 1, "iscrowd": 1, "segmentation": encode_mask(crowd)},
        {"id": 9002, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[1, 2, float("nan"), 4, 5, 6]]},
        {"id": 9003, "image_id": 2, "category_id": 1, "iscrowd": 0, "segmentation": []},
    ]
    data = {
        "images": [{"id": i + 1, "file_name": f"{i}.jpg", "height": 40, "width": 48} for i in range(images)],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "cup"}, {"id": 2, "name": "book"}],
    }
    path.write_text(json.dumps(data))
    return path


def test_prepare_writes_shards_pretraining_reads_with_problems_skipped(tmp_path: Path) -> None:
    source = _coco(tmp_path / "instances.json", images=10)
    result = prepare_modal(PrepareModalConfig(source, tmp_path / "agnostic", class_agnostic=True, image_size=SIZE))
    assert result.categories == ["object"] and sum(n for _, n, _ in result.splits.values()) == 20  # crowd skipped
    assert sorted(p.annotation_id for p in result.problems) == [9002, 9003]
    manifest = json.loads((tmp_path / "agnostic" / "dataset.json").read_text())
    image_splits: dict[int, set[str]] = {}
    for entry in manifest["objects"]:
        image_splits.setdefault(entry["image_id"], set()).add(entry["split"])
    assert all(len(splits) == 1 for splits in image_splits.values()) and len(image_splits) == 10
    test = ShapeNetAmodalDataset(tmp_path / "agnostic", "test")
    item = test[0]
    assert item["rgb"].shape == (3, SIZE, SIZE) and test.categories == ["object"]
    assert bool((item["visible"] <= item["amodal"]).all()) and item["occlusion_rate"] > 0  # test erasers in front
    per_category = prepare_modal(PrepareModalConfig(source, tmp_path / "named", image_size=SIZE, seed=0))
    assert per_category.categories == ["book", "cup"]
    again = prepare_modal(PrepareModalConfig(source, tmp_path / "again", class_agnostic=True, image_size=SIZE))
    first = np.load(tmp_path / "agnostic" / "shards" / "train-00000.npz")
    second = np.load(tmp_path / "again" / "shards" / "train-00000.npz")
    assert np.array_equal(first["rgb"], second["rgb"]) and again.splits == result.splits


def test_each_pairs_eraser_is_stored_as_its_occluder(tmp_path: Path) -> None:
    source = _coco(tmp_path / "instances.json", images=10)
    prepare_modal(PrepareModalConfig(source, tmp_path / "out", class_agnostic=True, image_size=SIZE))
    for split in ("train", "test"):
        rows = np.load(tmp_path / "out" / "shards" / f"{split}-00000.npz")
        occluder = rows["occluder"].astype(bool)
        assert occluder.any() and np.array_equal(occluder, rows["rgb"][:, 1] > 0)  # the eraser rides in green
        hidden = rows["amodal"].astype(bool) & ~rows["visible"].astype(bool)
        assert not (hidden & ~occluder).any()  # what is hidden, the eraser hides
    views = ShapeNetAmodalDataset(tmp_path / "out", "test")
    assert views.has_occluder and torch.equal(views[0]["occluder"][0], views[0]["rgb"][1])


def test_a_file_without_a_usable_instance_is_a_one_line_error(tmp_path: Path) -> None:
    source = tmp_path / "bad.json"
    image = {"id": 1, "height": 10, "width": 10}
    source.write_text(json.dumps({"images": [image], "annotations": [{"image_id": 1}, 5], "categories": []}))
    with pytest.raises(InputError, match=r"no usable instance; 2 entries skipped, first: .*annotation #0 has no"):
        prepare_modal(PrepareModalConfig(source, tmp_path / "out"))


def test_with_images_the_erasers_pixels_are_pasted_and_missing_images_skipped(tmp_path: Path) -> None:
    source = _coco(tmp_path / "instances.json", images=10)
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 10):  # image 10 ("9.jpg") is missing
        iio.imwrite(folder / f"{i - 1}.jpg", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), extension=".png")
    result = prepare_modal(PrepareModalConfig(source, tmp_path / "out", images=folder, image_size=SIZE))
    missing = [p for p in result.problems if p.image_id == 10]
    assert len(missing) == 1 and missing[0].kind.value == "missing image"
    shards = json.loads((tmp_path / "out" / "dataset.json").read_text())["shards"]
    rows = np.load(tmp_path / "out" / shards["test"][0])
    visible, hidden = rows["visible"].astype(bool), rows["amodal"].astype(bool) & ~rows["visible"].astype(bool)
    assert hidden.any()
    # the instance's own visible pixels are its image's; its hidden part shows the eraser's pixels
    assert np.array_equal(
        rows["rgb"].transpose(1, 0, 2, 3)[:, visible], rows["clean_rgb"].transpose(1, 0, 2, 3)[:, visible]
    )
    assert (rows["rgb"].transpose(1, 0, 2, 3)[:, hidden] != rows["clean_rgb"].transpose(1, 0, 2, 3)[:, hidden]).any()
    assert len(np.unique(rows["clean_rgb"])) > 10  # real pixels, not masks
    with pytest.raises(InputError, match="image folder not found"):
        prepare_modal(PrepareModalConfig(source, tmp_path / "none", images=tmp_path / "absent"))


def test_prepared_pairs_are_reused_only_when_made_alike(tmp_path: Path) -> None:
    annotations = _coco(tmp_path / "instances.json", images=4)
    config = PrepareModalConfig(annotations, tmp_path / "pairs", image_size=16, split_fractions=(0.5, 0.25, 0.25))
    assert prepared_modal_pairs(config) == config.out
    written = (config.out / "dataset.json").stat().st_mtime_ns
    assert prepared_modal_pairs(config) == config.out
    assert (config.out / "dataset.json").stat().st_mtime_ns == written
    with pytest.raises(InputError, match=r"pairs: holds other pairs \(seed: 0 -> 1\)"):
        prepared_modal_pairs(dataclasses.replace(config, seed=1))
    (tmp_path / "other").mkdir()
    with pytest.raises(InputError, match="holds no modal pairs"):
        prepared_modal_pairs(dataclasses.replace(config, out=tmp_path / "other"))
