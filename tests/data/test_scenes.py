"""The built-in scenes: exact masks, depth order, determinism, disjoint splits, COCO tooling, CLI.

Everything is tiny: 64x48 images, three categories, one object per category and split.
"""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.backgrounds import BACKGROUND_KINDS, random_background
from a3d_core.data.canonical import decode_segmentation
from a3d_core.data.detection import AmodalDetectionDataset
from a3d_core.data.masks import component_areas, erode
from a3d_core.data.prepare_scenes import ObjectPoolSettings, ScenesRequest, prepare_scenes, render_size_for
from a3d_core.data.scenes import ObjectView, PoseSettings, SceneSettings, compose_scene
from a3d_core.errors import InputError

TINY_SCENE = SceneSettings(width=64, height=48, objects_min=3, objects_max=4)
TINY_POOL = ObjectPoolSettings(train_objects=1, val_objects=1, views_per_object=2)
TINY_CATEGORIES = ("car", "chair", "table")


def tiny_request(out_dir, **changes) -> ScenesRequest:
    request = ScenesRequest(
        train_images=3,
        val_images=2,
        categories=TINY_CATEGORIES,
        scene=TINY_SCENE,
        pool=TINY_POOL,
        seed=3,
        out_dir=out_dir,
    )
    return replace(request, **changes)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes") / "scenes"
    return prepare_scenes(tiny_request(out))


def decoded_instances(root, split):
    data = json.loads((root / f"{split}.json").read_text())
    images = {image["id"]: image for image in data["images"]}
    by_image = {}
    for annotation in data["annotations"]:
        image = images[annotation["image_id"]]
        amodal = decode_segmentation(annotation["segmentation"], image["height"], image["width"]).astype(bool)
        visible = decode_segmentation(annotation["visible_mask"], image["height"], image["width"]).astype(bool)
        by_image.setdefault(image["id"], []).append((annotation, amodal, visible))
    return data, by_image


# ----------------------------------------------------------------------------------- ground truth
@pytest.mark.parametrize("split", ["train", "val"])
def test_visible_is_amodal_minus_the_objects_in_front(built, split):
    data, by_image = decoded_instances(built.dataset.root, split)
    assert len(data["images"]) == {"train": 3, "val": 2}[split]
    for instances in by_image.values():
        instances.sort(key=lambda item: item[0]["depth_order"])
        assert [a["depth_order"] for a, _, _ in instances] == list(range(len(instances)))
        in_front = np.zeros_like(instances[0][1])
        for annotation, amodal, visible in instances:
            assert amodal.any()
            assert not (visible & ~amodal).any()
            np.testing.assert_array_equal(visible, amodal & ~in_front)
            in_front |= amodal


@pytest.mark.parametrize("split", ["train", "val"])
def test_visible_masks_never_overlap_and_rates_match_the_masks(built, split):
    _, by_image = decoded_instances(built.dataset.root, split)
    for instances in by_image.values():
        coverage = sum(visible.astype(int) for _, _, visible in instances)
        assert coverage.max() == 1
        for annotation, amodal, visible in instances:
            expected = 1.0 - visible.sum() / amodal.sum()
            assert annotation["occlusion_rate"] == pytest.approx(expected, abs=1e-12)
            assert annotation["area"] == amodal.sum()
            assert annotation["occlusion_rate"] <= 1.0 - TINY_SCENE.min_visible_fraction + 1e-12


def test_front_object_is_unoccluded_and_most_others_are_not(built):
    _, by_image = decoded_instances(built.dataset.root, "train")
    behind = []
    for instances in by_image.values():
        front = [a for a, _, _ in instances if a["depth_order"] == 0]
        assert len(front) == 1 and front[0]["occlusion_rate"] == 0.0
        behind += [a["occlusion_rate"] for a, _, _ in instances if a["depth_order"] > 0]
    assert sum(rate > 0 for rate in behind) > len(behind) / 2


def test_metadata_categories_and_disjoint_objects(built):
    root = built.dataset.root
    manifest = json.loads((root / "dataset.json").read_text())
    assert manifest["splits"] == ["train", "val"] and manifest["source"] == "scenes"
    object_ids = {}
    for split in ("train", "val"):
        data = json.loads((root / f"{split}.json").read_text())
        assert data["categories"] == [
            {"id": 4, "name": "car", "supercategory": "shape"},
            {"id": 5, "name": "chair", "supercategory": "shape"},
            {"id": 11, "name": "table", "supercategory": "shape"},
        ]
        for image in data["images"]:
            assert (image["width"], image["height"]) == (64, 48)
            assert Image.open(root / "images" / image["file_name"]).size == (64, 48)
        for annotation in data["annotations"]:
            camera = annotation["camera"]
            assert 5.0 <= camera["elevation"] <= 45.0 and 0.0 <= camera["azimuth"] < 360.0
            assert 2.0 <= camera["distance"] <= 2.4
            assert annotation["view_id"] in (0, 1)
        object_ids[split] = {a["object_id"] for a in data["annotations"]}
    assert object_ids["train"] and object_ids["val"]
    assert not object_ids["train"] & object_ids["val"]
    # object k of a category: train holds k < train_objects, val the next val_objects indices
    assert {i.split("/")[-1] for i in object_ids["train"]} == {"0000"}
    assert {i.split("/")[-1] for i in object_ids["val"]} == {"0001"}


def test_split_summaries_count_what_was_written(built):
    for split, summary in built.splits.items():
        data = json.loads((built.dataset.root / f"{split}.json").read_text())
        assert summary.images == len(data["images"])
        assert summary.instances == len(data["annotations"]) == sum(summary.occlusion_histogram)
        assert summary.views == 3 * 2 and summary.objects == 3
        assert [a["id"] for a in data["annotations"]] == list(range(1, len(data["annotations"]) + 1))


def test_stock_pycocotools_loads_it_and_gt_as_predictions_gives_ap_1(built):
    ground_truth = COCO(str(built.dataset.root / "train.json"))
    predictions = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"], "score": 1.0}
        for a in ground_truth.dataset["annotations"]
    ]
    evaluation = COCOeval(ground_truth, ground_truth.loadRes(predictions), "segm")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_the_detection_dataset_serves_it_with_visible_and_amodal_targets(built):
    _, by_image = decoded_instances(built.dataset.root, "val")
    detection = AmodalDetectionDataset(built.dataset.root, "val")
    assert detection.categories.names == ("car", "chair", "table")
    image, target = detection[0]
    assert image.shape == (3, 48, 64)
    instances = by_image[target["image_id"]]
    np.testing.assert_array_equal(target["masks"].numpy().astype(bool), np.stack([v for _, _, v in instances]))
    np.testing.assert_array_equal(target["amodal_masks"].numpy().astype(bool), np.stack([a for _, a, _ in instances]))
    labels = {4: 1, 5: 2, 11: 3}
    assert target["labels"].tolist() == [labels[a["category_id"]] for a, _, _ in instances]


# ----------------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_whatever_the_workers_and_another_seed_differs(built, tmp_path):
    again = prepare_scenes(tiny_request(tmp_path / "again", workers=2))
    for name in ("train.json", "val.json"):
        assert (again.dataset.root / name).read_bytes() == (built.dataset.root / name).read_bytes()
    first_image = "images/train/000001.png"
    assert (again.dataset.root / first_image).read_bytes() == (built.dataset.root / first_image).read_bytes()
    other = prepare_scenes(tiny_request(tmp_path / "other", seed=4, val_images=0))
    assert other.dataset.splits == ["train"]
    assert (other.dataset.root / "train.json").read_bytes() != (built.dataset.root / "train.json").read_bytes()


def test_existing_folder_needs_overwrite(built):
    with pytest.raises(InputError, match="already exists"):
        prepare_scenes(tiny_request(built.dataset.root))


# ----------------------------------------------------------------------------------- composition
def square_view(colour, side, category="car"):
    """A hand-made view: a solid square of ``colour`` (premultiplied, full coverage)."""
    return ObjectView(
        category=category,
        object_id=f"test/{category}",
        view_id=0,
        camera={"elevation": 0.0, "azimuth": 0.0, "distance": 2.0},
        rgb=np.full((side, side, 3), colour, dtype=np.float32),
        silhouette=np.ones((side, side), dtype=bool),
        pixels_per_unit=side,
    )


def test_compose_paints_each_visible_region_with_its_own_object():
    colours = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    views = [square_view(colour, 20) for colour in colours]
    settings = SceneSettings(
        width=64, height=48, objects_min=3, objects_max=3, size_range=(0.4, 0.5), depth_range=(1.0, 1.0)
    )
    for seed in range(5):
        scene = compose_scene(np.random.default_rng(seed), views, settings)
        assert len(scene.instances) + scene.dropped == 3
        for instance in scene.instances:
            colour = np.array(instance.view.rgb[0, 0]) * 255
            interior = erode(instance.visible)
            assert interior.any()
            np.testing.assert_array_equal(scene.image[interior], np.broadcast_to(colour, (int(interior.sum()), 3)))


def test_an_object_with_no_valid_place_is_dropped():
    # every object fills more than the image: with at most 30% outside, nothing fits behind the first
    views = [square_view((0.5, 0.5, 0.5), 40)]
    settings = SceneSettings(
        width=32,
        height=32,
        objects_min=3,
        objects_max=3,
        size_range=(1.0, 1.0),
        depth_range=(1.0, 1.0),
        max_truncation=0.3,
        min_visible_fraction=0.5,
        min_solid_fraction=0.2,
    )
    scene = compose_scene(np.random.default_rng(0), views, settings)
    assert len(scene.instances) == 1 and scene.dropped == 2
    assert scene.instances[0].visible.sum() == scene.instances[0].amodal.sum() >= 0.7 * 32 * 32


# ----------------------------------------------------------------------------------- parts
def test_component_areas_and_erosion_on_a_hand_made_mask():
    mask = np.array(
        [
            [1, 1, 0, 0, 1],
            [1, 0, 0, 1, 1],
            [0, 0, 1, 0, 0],
            [1, 1, 1, 0, 1],
        ],
        dtype=bool,
    )
    assert component_areas(mask) == [4, 3, 3, 1]  # diagonal neighbours are not connected
    assert component_areas(np.zeros((3, 3), bool)) == []
    block = np.zeros((5, 5), bool)
    block[1:4, 1:4] = True
    expected = np.zeros((5, 5), bool)
    expected[2, 2] = True
    np.testing.assert_array_equal(erode(block), expected)
    assert not erode(np.ones((2, 2), bool)).any()  # the border erodes


def test_render_size_covers_the_largest_object():
    scene = SceneSettings(width=256, height=192, size_range=(0.55, 0.85), depth_range=(1.0, 1.4))
    poses = PoseSettings(distance_range=(2.0, 2.4), fov_degrees=30.0)
    needed = 0.85 * 192 * 2 * 2.4 * math.tan(math.radians(15.0))  # 209.9 render pixels
    assert render_size_for(scene, poses) == 216 == 8 * math.ceil(needed / 8)
    assert render_size_for(scene, poses, max_enlargement=1.25) == 168 == 8 * math.ceil(needed / 1.25 / 8)


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_backgrounds_are_deterministic_images_in_range(kind):
    image, drawn = random_background(np.random.default_rng(1), 12, 16, kind)
    again, _ = random_background(np.random.default_rng(1), 12, 16, kind)
    assert drawn == kind and image.shape == (12, 16, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.0
    np.testing.assert_array_equal(image, again)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SceneSettings(objects_min=4, objects_max=3), "objects_min"),
        (lambda: SceneSettings(width=8), "at least 16x16"),
        (lambda: SceneSettings(target_occlusion=(0.5, 1.0)), "target_occlusion"),
        (lambda: PoseSettings(distance_range=(1.5, 2.0)), "nearest distance"),
        (lambda: ObjectPoolSettings(val_objects=0), "at least 1"),
    ],
)
def test_settings_reject_bad_values(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_request_rejects_unknown_categories(tmp_path):
    with pytest.raises(InputError, match="unknown categories spaceship"):
        tiny_request(tmp_path, categories=("car", "spaceship"))


# ----------------------------------------------------------------------------------- CLI
runner = CliRunner()


def test_cli_writes_the_dataset_and_the_preview(tmp_path):
    preview = tmp_path / "preview.png"
    result = runner.invoke(
        app,
        [
            "prepare",
            "scenes",
            "--train-images",
            "2",
            "--val-images",
            "1",
            "--image-size",
            "64x48",
            "--categories",
            "chair,table",
            "--train-objects",
            "1",
            "--val-objects",
            "1",
            "--views",
            "1",
            "--workers",
            "1",
            "--data-root",
            str(tmp_path / "root"),
            "--preview",
            str(preview),
        ],
    )
    assert result.exit_code == 0, result.output
    root = tmp_path / "root" / "scenes"
    assert json.loads((root / "dataset.json").read_text())["splits"] == ["train", "val"]
    assert len(json.loads((root / "train.json").read_text())["images"]) == 2
    grid = np.asarray(Image.open(preview))
    assert grid.shape == (2 * (48 + 4) - 4, 3 * (64 + 4) - 4, 3)  # two train scenes x (image, visible, amodal)
    for text in ("instances per category", "occlusion rate", "chair", "[0.9, 1.0]"):
        assert text in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--image-size", "64"], "WIDTHxHEIGHT"),
        (["--categories", "chair,spaceship"], "unknown categories spaceship"),
        (["--objects-min", "5", "--objects-max", "2"], "objects_min"),
        (["--val-fraction", "1.5"], "--val-fraction"),
    ],
)
def test_cli_bad_options_give_one_line_errors(tmp_path, args, message):
    result = runner.invoke(app, ["prepare", "scenes", "--out", str(tmp_path / "s"), *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s").exists()
