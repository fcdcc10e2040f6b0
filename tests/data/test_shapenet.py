"""The prepared ShapeNet-style dataset: the Dataset contract, splits by object, new views, export, errors."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from a3d_core.data.canonical import decode_segmentation, read_dataset
from a3d_core.data.occlusion import OcclusionGenerator
from a3d_core.data.prepare_shapenet import ObjectSpec, PrepareShapeNetConfig, assign_splits, prepare_shapenet
from a3d_core.data.shapenet import ShapeNetAmodalDataset, export_canonical, load_split_arrays, read_shard, write_shard
from a3d_core.errors import InputError

CATEGORIES = ("chair", "lamp", "table")


def tiny_config(out: Path, **overrides) -> PrepareShapeNetConfig:
    settings = dict(
        out=out,
        categories=CATEGORIES,
        objects_per_category=3,
        views=4,
        image_size=32,
        split_fractions=(0.5, 0.2, 0.3),
        holdout_views=(18, 23),
        seed=5,
        export_coco=True,
    )
    settings.update(overrides)
    return PrepareShapeNetConfig(**settings)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapenet") / "data"
    result = prepare_shapenet(tiny_config(out, preview=out.parent / "preview.png"))
    return out, result


def test_dataset_contract(prepared):
    root, _ = prepared
    ds = ShapeNetAmodalDataset(root, "train")
    assert ds.categories == list(CATEGORIES)
    # 9 objects: floor(0.2 * 9) = 1 val, floor(0.3 * 9) = 2 test, 6 train; views 0, 12 seen (18 held
    # out, and 6, its mirror image)
    assert len(ds) == 6 * 2
    assert ds.object_index.dtype == np.int64 and ds.view_id.dtype == np.int64 and ds.object_index.shape == (len(ds),)
    for i in range(len(ds)):
        item = ds[i]
        assert set(item) == {
            "rgb",
            "visible",
            "amodal",
            "category",
            "object_index",
            "view_id",
            "occlusion_rate",
            "elevation",
            "azimuth",
            "occluder",
        }
        assert item["rgb"].shape == (3, 32, 32) and item["rgb"].dtype == torch.float32
        assert item["visible"].shape == (1, 32, 32) and item["amodal"].shape == (1, 32, 32)
        assert 0.0 <= float(item["rgb"].min()) and float(item["rgb"].max()) <= 1.0
        assert set(item["visible"].unique().tolist()) <= {0.0, 1.0} and set(item["amodal"].unique().tolist()) == {
            0.0,
            1.0,
        }
        assert not bool(((item["visible"] > 0) & (item["amodal"] == 0)).any())  # visible within amodal
        rate = 1 - float(item["visible"].sum() / item["amodal"].sum())
        assert float(item["occlusion_rate"]) == pytest.approx(rate, abs=1e-6) and 0.1 - 1e-6 <= rate <= 0.7 + 1e-6
        assert item["category"].dtype == torch.int64 and item["category"].ndim == 0
        assert int(item["object_index"]) == ds.object_index[i] and int(item["view_id"]) == ds.view_id[i]
    # every object of the split shows all its seen views: cross-view pairs exist
    for index in np.unique(ds.object_index):
        assert sorted(ds.view_id[ds.object_index == index].tolist()) == [0, 12]


def test_splits_are_disjoint_by_object_and_new_views_are_held_out(prepared):
    root, result = prepared
    objects = {split: set(ShapeNetAmodalDataset(root, split).object_index.tolist()) for split in result.splits}
    assert set(result.splits) == {"train", "val", "test", "test_newview"}
    assert objects["train"].isdisjoint(objects["val"]) and objects["train"].isdisjoint(objects["test"])
    assert objects["val"].isdisjoint(objects["test"])
    assert objects["test_newview"] == objects["test"]  # new views of the test objects, never of training objects
    assert set(ShapeNetAmodalDataset(root, "test_newview").view_id.tolist()) == {6, 18}
    for split in ("train", "val", "test"):
        assert set(ShapeNetAmodalDataset(root, split).view_id.tolist()) == {0, 12}


def test_canonical_manifest_and_exported_json_agree_with_the_shards(prepared):
    root, _ = prepared
    dataset = read_dataset(root)
    assert dataset.manifest["storage"] == "npz-shards" and dataset.manifest["format"] == "a3d-amodal"
    split = dataset.load_split("val")
    _, arrays = load_split_arrays(root, "val")
    assert len(split.annotations) == len(arrays["category"]) == 2  # one val object at the 2 seen views
    assert [c["name"] for c in split.categories] == list(CATEGORIES)
    import imageio.v3 as iio

    for k, (image, annotation) in enumerate(zip(split.images, split.annotations)):
        amodal = decode_segmentation(annotation["segmentation"], 32, 32)
        visible = decode_segmentation(annotation["visible_mask"], 32, 32)
        np.testing.assert_array_equal(amodal, arrays["amodal"][k])
        np.testing.assert_array_equal(visible, arrays["visible"][k])
        assert annotation["category_id"] == arrays["category"][k] + 1
        assert annotation["view_id"] == arrays["view_id"][k] and annotation["object_id"] == arrays["object_index"][k]
        np.testing.assert_array_equal(iio.imread(dataset.image_path(image)).transpose(2, 0, 1), arrays["rgb"][k])


def test_export_canonical_writes_a_separate_coco_dataset(prepared, tmp_path):
    root, result = prepared
    exported = export_canonical(root, tmp_path / "coco")
    assert exported.splits == ["train", "val", "test", "test_newview"]
    train = exported.load_split("train")
    assert len(train.images) == len(train.annotations) == result.splits["train"].samples
    assert all(exported.image_path(image).is_file() for image in train.images)
    rates = [a["occlusion_rate"] for a in train.annotations]
    _, arrays = load_split_arrays(root, "train")
    np.testing.assert_allclose(rates, arrays["occlusion_rate"], atol=1e-6)


def test_preview_has_one_row_per_category(prepared):
    import imageio.v3 as iio

    root, result = prepared
    image = iio.imread(result.preview)
    # 32-pixel tiles are drawn 3x (96 px) with 3-pixel gaps: 3 rows
    assert image.shape == (3 * (96 + 3) + 3, 2 * (4 * 96 + 3) + 3, 3)


def test_missing_root_or_split_is_a_clear_input_error(prepared, tmp_path):
    root, _ = prepared
    with pytest.raises(InputError, match="no ShapeNet dataset here"):
        ShapeNetAmodalDataset(tmp_path / "nowhere", "train")
    with pytest.raises(InputError, match=r"no split 'bogus' \(has train, val, test, test_newview\)"):
        ShapeNetAmodalDataset(root, "bogus")


def test_same_seed_same_dataset_with_parallel_workers(prepared, tmp_path):
    root, _ = prepared
    prepare_shapenet(tiny_config(tmp_path / "again", export_coco=False, workers=2))
    for split in ("train", "test_newview"):
        _, first = load_split_arrays(root, split)
        _, second = load_split_arrays(tmp_path / "again", split)
        for name in first:
            np.testing.assert_array_equal(first[name], second[name], err_msg=f"{split}/{name}")


def test_on_the_fly_occlusion_keeps_the_amodal_mask_and_reproduces_per_epoch(prepared):
    root, _ = prepared
    stored = ShapeNetAmodalDataset(root, "train")
    fresh = ShapeNetAmodalDataset(root, "train", occlusion=OcclusionGenerator(), seed=1)
    first, again = fresh[0], fresh[0]
    assert torch.equal(first["amodal"], stored[0]["amodal"])
    assert torch.equal(first["rgb"], again["rgb"])
    fresh.epoch = 1
    rates = {float(fresh[i]["occlusion_rate"]) for i in range(4)} | {float(first["occlusion_rate"])}
    assert len(rates) > 1 and all(0.1 - 1e-6 <= r <= 0.7 + 1e-6 for r in rates)


def test_shards_round_trip_and_reject_damage(tmp_path):
    count, size = 2, 8
    arrays = {
        "rgb": np.full((count, 3, size, size), 7, np.uint8),
        "clean_rgb": np.zeros((count, 3, size, size), np.uint8),
        "visible": np.zeros((count, size, size), np.uint8),
        "amodal": np.ones((count, size, size), np.uint8),
        "category": np.array([0, 1]),
        "object_index": np.array([4, 4]),
        "view_id": np.array([0, 3]),
        "occlusion_rate": np.array([1.0, 1.0]),
        "elevation": np.array([30.0, 30.0]),
        "azimuth": np.array([0.0, -45.0]),
        "distance": np.array([2.732, 2.732]),
    }
    path = write_shard(tmp_path / "s.npz", arrays)
    loaded = read_shard(path)
    assert loaded["rgb"].dtype == np.uint8 and loaded["view_id"].tolist() == [0, 3]
    np.savez(tmp_path / "bad.npz", **{**arrays, "visible": np.zeros((count, size, size + 1), np.uint8)})
    with pytest.raises(InputError, match=r"bad\.npz: array 'visible' should be uint8"):
        read_shard(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="junk.npz: not a readable npz shard"):
        read_shard(tmp_path / "junk.npz")


def test_the_stored_occluder_hides_exactly_the_hidden_part_and_old_shards_load_without_it(prepared, tmp_path):
    root, _ = prepared
    ds = ShapeNetAmodalDataset(root, "train")
    assert ds.has_occluder
    for i in range(len(ds)):
        item = ds[i]
        occluder, visible, amodal = (item[key].bool() for key in ("occluder", "visible", "amodal"))
        assert item["occluder"].shape == (1, 32, 32) and item["occluder"].dtype == torch.float32
        assert torch.equal(amodal & ~visible, amodal & occluder)  # the hidden part is under the occluder
        assert not (visible & occluder).any()
    old = tmp_path / "old"
    shutil.copytree(root, old)
    for path in sorted((old / "shards").glob("*.npz")):
        write_shard(path, {name: value for name, value in read_shard(path).items()})
        assert "occluder" not in read_shard(path, optional=["occluder"])
    before = ShapeNetAmodalDataset(old, "train")
    assert not before.has_occluder and "occluder" not in before[0]
    assert torch.equal(before[0]["visible"], ds[0]["visible"])
    drawn = ShapeNetAmodalDataset(old, "train", occlusion=OcclusionGenerator())
    assert drawn.has_occluder and drawn[0]["occluder"].shape == (1, 32, 32)


def test_assign_splits_is_by_object_stratified_and_seeded():
    def objects():
        return [ObjectSpec(c, f"{c}/{i}", "builtin", None) for c in "abcdefghijklm" for i in range(2)]

    first, again = objects(), objects()
    assign_splits(first, (0.7, 0.1, 0.2), seed=3)
    assign_splits(again, (0.7, 0.1, 0.2), seed=3)
    assert [o.split for o in first] == [o.split for o in again]
    counts = {s: sum(o.split == s for o in first) for s in ("train", "val", "test")}
    assert counts == {"train": 19, "val": 2, "test": 5}  # floor(2.6) = 2 val, floor(5.2) = 5 test
    test_categories = {o.category for o in first if o.split == "test"}
    assert len(test_categories) == 5  # round-robin: five different categories


def test_config_validation():
    with pytest.raises(ValueError, match="split_fractions"):
        PrepareShapeNetConfig(out=Path("x"), split_fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="holdout_views"):
        PrepareShapeNetConfig(out=Path("x"), holdout_views=(20, 30))
    with pytest.raises(ValueError, match="unknown built-in categories"):
        PrepareShapeNetConfig(out=Path("x"), categories=("bicycle",))
