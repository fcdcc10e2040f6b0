"""KINS -> canonical: every output field against hand-computed values, stock COCOeval round trip."""

import numpy as np
import pytest

from a3d_core.data.canonical import read_dataset
from a3d_core.data.prepare_real import RealPrepareRequest, prepare_real
from tests.data.formats_fixtures import (
    CANONICAL_KEYS,
    KINS_CATEGORIES,
    KINS_H,
    KINS_W,
    decoded,
    kins_files,
    rect,
    stock_cocoeval_ap,
)


@pytest.fixture()
def kins_dataset(tmp_path):
    annotation_file, images = kins_files(tmp_path / "src")
    result = prepare_real(RealPrepareRequest("kins", (annotation_file,), images, out_dir=tmp_path / "kins"))
    return result, images


def test_manifest_images_and_categories(kins_dataset):
    result, images = kins_dataset
    dataset = read_dataset(result.dataset.root)
    assert dataset.manifest["source"] == "kins" and dataset.splits == ["train"]
    assert dataset.manifest["image_root"] == str(images.resolve())  # images are not copied
    split = dataset.load_split("train")
    assert split.images == [  # the image-level amodal_full field is dropped
        {"id": 1, "file_name": "000001.png", "width": KINS_W, "height": KINS_H},
        {"id": 2, "file_name": "000002.png", "width": KINS_W, "height": KINS_H},
    ]
    assert split.categories == KINS_CATEGORIES
    assert dataset.image_path(split.images[0]).is_file()


def test_every_annotation_field_by_hand(kins_dataset):
    result, _ = kins_dataset
    by_id = {a["id"]: a for a in result.dataset.load_split("train").annotations}
    assert sorted(by_id) == [11, 12, 13]
    for annotation in by_id.values():
        assert set(annotation) == CANONICAL_KEYS  # inmodal_seg, inmodal_bbox, ... are not copied

    car = by_id[11]  # amodal 200 x 100 at (100, 150), visible its left 100 columns
    assert (car["image_id"], car["category_id"], car["iscrowd"]) == (1, 4, 0)
    assert car["bbox"] == [100.0, 150.0, 200.0, 100.0] and car["area"] == 20000.0
    assert car["visible_bbox"] == [100.0, 150.0, 100.0, 100.0] and car["visible_area"] == 10000.0
    assert car["occlusion_rate"] == 0.5
    np.testing.assert_array_equal(decoded(car["segmentation"]), rect(KINS_H, KINS_W, 100, 150, 300, 250))
    np.testing.assert_array_equal(decoded(car["visible_mask"]), rect(KINS_H, KINS_W, 100, 150, 200, 250))

    pedestrian = by_id[12]  # unoccluded; visible given as uncompressed RLE
    assert (pedestrian["image_id"], pedestrian["category_id"]) == (1, 2)
    assert pedestrian["bbox"] == pedestrian["visible_bbox"] == [600.0, 100.0, 40.0, 120.0]
    assert pedestrian["area"] == pedestrian["visible_area"] == 4800.0
    assert pedestrian["occlusion_rate"] == 0.0

    cyclist = by_id[13]  # two 20 x 20 amodal squares, the left one visible
    assert (cyclist["image_id"], cyclist["category_id"]) == (2, 1)
    assert cyclist["bbox"] == [10.0, 10.0, 60.0, 20.0] and cyclist["area"] == 800.0
    assert cyclist["visible_bbox"] == [10.0, 10.0, 20.0, 20.0] and cyclist["visible_area"] == 400.0
    assert cyclist["occlusion_rate"] == 0.5
    expected = rect(KINS_H, KINS_W, 10, 10, 30, 30) | rect(KINS_H, KINS_W, 50, 10, 70, 30)
    np.testing.assert_array_equal(decoded(cyclist["segmentation"]), expected)


def test_report_counts(kins_dataset):
    report = kins_dataset[0].report
    assert (report.images, report.instances, report.skipped_images, report.skipped_instances) == (2, 3, 0, 0)
    assert report.problems == [] and report.notes == {}
    assert {c.name: c.instances for c in report.categories} == {
        "cyclist": 1,
        "pedestrian": 1,
        "car": 1,
        "tram": 0,
        "truck": 0,
        "van": 0,
        "misc": 0,
    }
    assert report.occlusion_histogram == [1, 0, 0, 0, 0, 2, 0, 0, 0, 0]  # 0.0 once, 0.5 twice


def test_stock_cocoeval_gives_ap_one(kins_dataset):
    result, _ = kins_dataset
    assert stock_cocoeval_ap(result.dataset.split_path("train")) == pytest.approx(1.0)
