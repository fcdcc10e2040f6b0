"""The canonical amodal format: masks, annotations, atomic writes, stock pycocotools round trip."""

import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from a3d_core.boxes import mask_bbox
from a3d_core.data.canonical import (
    AmodalSplit,
    amodal_annotation,
    decode_segmentation,
    encode_mask,
    read_dataset,
    write_dataset,
)
from a3d_core.errors import InputError


def _square(height, width, y0, y1, x0, x1):
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def test_rle_round_trip_and_json_ready():
    mask = _square(37, 53, 5, 20, 10, 41)
    rle = encode_mask(mask)
    assert rle["size"] == [37, 53] and isinstance(rle["counts"], str)
    json.dumps(rle)
    np.testing.assert_array_equal(decode_segmentation(rle, 37, 53), mask)


def test_decode_polygon_flat_polygon_and_uncompressed_rle():
    polygon = [[10, 5, 30, 5, 30, 15, 10, 15]]
    from_list = decode_segmentation(polygon, 20, 40)
    from_flat = decode_segmentation(polygon[0], 20, 40)
    np.testing.assert_array_equal(from_list, from_flat)
    assert 200 <= from_list.sum() <= 231  # 20 x 10 box, rasterised by COCO's polygon rule
    mask = _square(6, 4, 1, 4, 1, 3)
    # uncompressed column-major counts: 7 zeros, 3 ones, 3 zeros, 3 ones, 8 zeros
    counts = [7, 3, 3, 3, 8]
    np.testing.assert_array_equal(decode_segmentation({"size": [6, 4], "counts": counts}, 6, 4), mask)


def test_decode_rejects_bad_shapes():
    with pytest.raises(ValueError, match="at least 3"):
        decode_segmentation([[1, 2, 3, 4]], 10, 10)
    with pytest.raises(ValueError, match="disagrees"):
        decode_segmentation(encode_mask(np.zeros((5, 5))), 6, 5)


def test_amodal_annotation_fields_by_hand():
    amodal = _square(40, 50, 10, 30, 5, 25)  # 20 x 20 = 400 px
    visible = _square(40, 50, 10, 30, 5, 15)  # 20 x 10 = 200 px
    visible[0, 0] = 1  # noise outside the amodal mask is clipped away
    annotation = amodal_annotation(7, 3, 2, amodal, visible, object_id="x")
    assert annotation["bbox"] == [5.0, 10.0, 20.0, 20.0]
    assert annotation["visible_bbox"] == [5.0, 10.0, 10.0, 20.0]
    assert annotation["area"] == 400.0 and annotation["visible_area"] == 200.0
    assert annotation["occlusion_rate"] == pytest.approx(0.5)
    assert annotation["object_id"] == "x" and annotation["iscrowd"] == 0
    assert mask_bbox(np.zeros((3, 3))) == [0.0, 0.0, 0.0, 0.0]


def _tiny_split():
    images = [
        {"id": 1, "file_name": "a.png", "width": 64, "height": 48},
        {"id": 2, "file_name": "b.png", "width": 64, "height": 48},
    ]
    annotations = [
        amodal_annotation(1, 1, 1, _square(48, 64, 5, 30, 5, 30), _square(48, 64, 5, 30, 5, 20)),
        amodal_annotation(2, 1, 2, _square(48, 64, 20, 45, 30, 60), _square(48, 64, 20, 45, 30, 60)),
        amodal_annotation(3, 2, 1, _square(48, 64, 0, 10, 0, 64), _square(48, 64, 0, 5, 0, 64)),
    ]
    categories = [{"id": 1, "name": "car"}, {"id": 2, "name": "chair"}]
    return AmodalSplit(images, annotations, categories)


def test_dataset_round_trip_through_stock_cocoeval(tmp_path):
    split = _tiny_split()
    dataset = write_dataset(tmp_path / "tiny", "tiny", "test", {"val": split})
    assert dataset.splits == ["val"] and dataset.image_root == tmp_path / "tiny" / "images"
    loaded = read_dataset(tmp_path / "tiny").load_split("val")
    assert loaded.annotations == split.annotations

    ground_truth = COCO(str(dataset.split_path("val")))
    detections = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"], "score": 1.0}
        for a in loaded.annotations
    ]
    evaluator = COCOeval(ground_truth, ground_truth.loadRes(detections), "segm")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


def test_write_dataset_is_atomic_and_never_clobbers(tmp_path):
    target = tmp_path / "ds"
    write_dataset(target, "ds", "test", {"val": _tiny_split()})
    before = (target / "val.json").read_bytes()
    with pytest.raises(InputError, match="already exists"):
        write_dataset(target, "ds", "test", {"val": AmodalSplit()})

    def failing_images():
        yield "x.png", b"123"
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_dataset(target, "ds", "test", {"val": AmodalSplit()}, overwrite=True, write_images=failing_images())
    assert (target / "val.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_malformed_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: malformed JSON"):
        AmodalSplit.read(bad)
    with pytest.raises(InputError, match="file not found"):
        read_dataset(tmp_path / "nowhere")
    bad.write_text(json.dumps({"images": [], "annotations": [{"id": 4, "segmentation": []}], "categories": []}))
    with pytest.raises(InputError, match="annotation 4"):
        AmodalSplit.read(bad)
