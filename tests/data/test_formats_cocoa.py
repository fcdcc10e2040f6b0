"""COCOA (class-agnostic regions) -> canonical: ids by region order, stuff skipped unless kept."""

import numpy as np
import pytest

from a3d_core.data.formats.cocoa import STUFF_EXCLUDED
from a3d_core.data.prepare_real import RealPrepareRequest, prepare_real
from tests.data.formats_fixtures import CANONICAL_KEYS, COCO_H, COCO_W, cocoa_files, decoded, rect, stock_cocoeval_ap


def test_regions_become_class_agnostic_annotations(tmp_path):
    annotation_file, images = cocoa_files(tmp_path / "src")
    result = prepare_real(RealPrepareRequest("cocoa", (annotation_file,), images, split="val", out_dir=tmp_path / "c"))
    split = result.dataset.load_split("val")
    assert split.categories == [{"id": 1, "name": "object"}]
    assert split.images == [{"id": 42, "file_name": "COCO_val2014_000000000042.jpg", "width": COCO_W, "height": COCO_H}]
    dog, sofa = split.annotations  # the stuff region (sky, id 3) is skipped
    assert set(dog) == CANONICAL_KEYS | {"source"}
    assert (dog["id"], dog["image_id"], dog["category_id"], dog["iscrowd"]) == (1, 42, 1, 0)
    assert dog["bbox"] == [100.0, 100.0, 100.0, 100.0] and dog["area"] == 10000.0
    assert dog["visible_bbox"] == [100.0, 100.0, 40.0, 100.0] and dog["visible_area"] == 4000.0
    assert dog["occlusion_rate"] == pytest.approx(0.6)
    assert dog["source"] == {"isStuff": 0, "order": 2, "name": "dog"}  # trailing space of the name trimmed
    np.testing.assert_array_equal(decoded(dog["segmentation"]), rect(COCO_H, COCO_W, 100, 100, 200, 200))
    # an unoccluded region has no visible_mask: its visible mask is its amodal mask
    assert (sofa["id"], sofa["area"], sofa["visible_area"], sofa["occlusion_rate"]) == (2, 10000.0, 10000.0, 0.0)
    assert sofa["bbox"] == sofa["visible_bbox"] == [0.0, 400.0, 200.0, 50.0]
    assert sofa["source"] == {"isStuff": 0, "order": 1, "name": "sofa"}
    assert result.report.excluded == {STUFF_EXCLUDED: 1} and result.report.problems == []
    assert result.report.occlusion_histogram == [1, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert stock_cocoeval_ap(result.dataset.split_path("val")) == pytest.approx(1.0)


def test_keep_stuff_keeps_stuff_regions_with_their_flag(tmp_path):
    annotation_file, images = cocoa_files(tmp_path / "src")
    request = RealPrepareRequest("cocoa", (annotation_file,), images, out_dir=tmp_path / "c", keep_stuff=True)
    annotations = prepare_real(request).dataset.load_split("train").annotations
    assert [a["id"] for a in annotations] == [1, 2, 3]
    sky = annotations[2]
    assert sky["source"] == {"isStuff": 1, "order": 3, "name": "sky"}
    assert sky["bbox"] == [0.0, 0.0, 640.0, 50.0] and sky["area"] == 32000.0 and sky["occlusion_rate"] == 0.0
