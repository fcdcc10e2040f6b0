"""D2SA (two files merged into one split) and COCOA-cls -> canonical, field by field."""

import numpy as np
import pytest

from a3d_core.data.formats.coco_style import VISIBLE_ABSENT_NOTE
from a3d_core.data.prepare_real import RealPrepareRequest, prepare_real
from a3d_core.errors import InputError
from tests.data.formats_fixtures import (
    CANONICAL_KEYS,
    COCO_H,
    COCO_W,
    D2SA_CATEGORIES,
    D2SA_H,
    D2SA_W,
    cocoa_cls_files,
    d2sa_files,
    decoded,
    rect,
    stock_cocoeval_ap,
    write_json,
)


def test_rot0_and_augmented_merge_into_one_split_with_unique_ids(tmp_path):
    rot0, augmented, images = d2sa_files(tmp_path / "src")
    result = prepare_real(RealPrepareRequest("d2sa", (rot0, augmented), images, out_dir=tmp_path / "d2sa"))
    split = result.dataset.load_split("train")
    # both files number images and annotations from 1: the second file's ids move past the first's
    assert split.images == [
        {"id": 1, "file_name": "D2S_000001.png", "width": D2SA_W, "height": D2SA_H},
        {"id": 2, "file_name": "aug_1.png", "width": D2SA_W, "height": D2SA_H},
    ]
    assert [o["image_id_offset"] for o in split.info["id_offsets"]] == [0, 1]
    assert [o["annotation_id_offset"] for o in split.info["id_offsets"]] == [0, 2]
    assert split.categories == D2SA_CATEGORIES
    first, unoccluded, augmented_one = split.annotations
    assert all(set(a) == CANONICAL_KEYS for a in split.annotations)  # occl_depth, amodal_region... dropped

    # amodal RLE string 400 x 300 at (100, 200); visible polygon of its left 100 columns
    assert (first["id"], first["image_id"], first["category_id"]) == (1, 1, 1)
    assert first["bbox"] == [100.0, 200.0, 400.0, 300.0] and first["area"] == 120000.0
    assert first["visible_bbox"] == [100.0, 200.0, 100.0, 300.0] and first["visible_area"] == 30000.0
    assert first["occlusion_rate"] == 0.75
    np.testing.assert_array_equal(decoded(first["visible_mask"]), rect(D2SA_H, D2SA_W, 100, 200, 200, 500))

    # no visible_mask: unoccluded, and counted in the notes
    assert (unoccluded["id"], unoccluded["category_id"], unoccluded["area"]) == (2, 9, 2500.0)
    assert unoccluded["visible_mask"] == unoccluded["segmentation"] and unoccluded["occlusion_rate"] == 0.0
    assert result.report.notes == {VISIBLE_ABSENT_NOTE: 1}

    # augmented: amodal uncompressed RLE 200 x 200, visible RLE string of its top 50 rows
    assert (augmented_one["id"], augmented_one["image_id"], augmented_one["category_id"]) == (3, 2, 9)
    assert augmented_one["bbox"] == [0.0, 0.0, 200.0, 200.0] and augmented_one["area"] == 40000.0
    assert augmented_one["visible_bbox"] == [0.0, 0.0, 200.0, 50.0] and augmented_one["visible_area"] == 10000.0
    assert augmented_one["occlusion_rate"] == 0.75
    np.testing.assert_array_equal(decoded(augmented_one["segmentation"]), rect(D2SA_H, D2SA_W, 0, 0, 200, 200))

    assert {c.name: c.instances for c in result.report.categories} == {
        "adelholzener_alpenquelle_classic_075": 1,
        "apple_red": 2,
    }
    assert result.report.occlusion_histogram == [1, 0, 0, 0, 0, 0, 0, 2, 0, 0]
    assert stock_cocoeval_ap(result.dataset.split_path("train")) == pytest.approx(1.0)


def test_cocoa_cls_fields_by_hand_and_cocoeval(tmp_path):
    annotation_file, images = cocoa_cls_files(tmp_path / "src")
    result = prepare_real(RealPrepareRequest("cocoa-cls", (annotation_file,), images, out_dir=tmp_path / "c"))
    split = result.dataset.load_split("train")
    assert split.categories == [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    assert split.images == [
        {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "width": COCO_W, "height": COCO_H}
    ]
    person, car = split.annotations
    assert (person["id"], person["image_id"], person["category_id"]) == (40, 9, 1)
    assert person["bbox"] == [50.0, 60.0, 100.0, 200.0] and person["area"] == 20000.0
    assert person["visible_bbox"] == [50.0, 60.0, 100.0, 150.0] and person["visible_area"] == 15000.0
    assert person["occlusion_rate"] == 0.25
    assert (car["id"], car["category_id"], car["area"], car["visible_area"], car["occlusion_rate"]) == (
        41,
        3,
        2400.0,
        2400.0,
        0.0,
    )
    np.testing.assert_array_equal(decoded(car["segmentation"]), rect(COCO_H, COCO_W, 300, 300, 360, 340))
    assert stock_cocoeval_ap(result.dataset.split_path("train")) == pytest.approx(1.0)


def test_merged_files_must_agree_on_category_names(tmp_path):
    rot0, augmented, images = d2sa_files(tmp_path / "src")
    clash = write_json(
        tmp_path / "clash.json", {"images": [], "annotations": [], "categories": [{"id": 9, "name": "pear"}]}
    )
    with pytest.raises(InputError, match="category 9 is 'pear' here but 'apple_red'"):
        prepare_real(RealPrepareRequest("d2sa", (rot0, clash), images, out_dir=tmp_path / "d"))
