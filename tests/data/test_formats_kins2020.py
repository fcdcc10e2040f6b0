"""KINS 2020 -> canonical: polygons for both masks, occlusion cluster ids kept as metadata."""

import numpy as np
import pytest

from a3d_core.data.prepare_real import RealPrepareRequest, prepare_real
from a3d_core.errors import InputError
from tests.data.formats_fixtures import CANONICAL_KEYS, KINS_H, KINS_W, decoded, kins2020_files, rect, stock_cocoeval_ap


def test_every_field_by_hand_and_cocoeval(tmp_path):
    annotation_file, images = kins2020_files(tmp_path / "src")
    result = prepare_real(
        RealPrepareRequest("kins2020", (annotation_file,), images, split="val", out_dir=tmp_path / "k")
    )
    assert result.dataset.splits == ["val"] and result.dataset.manifest["source"] == "kins2020"
    split = result.dataset.load_split("val")
    assert split.images == [{"id": 7, "file_name": "000007.png", "width": KINS_W, "height": KINS_H}]
    van, tram = split.annotations
    assert set(van) == CANONICAL_KEYS | {"source"}
    assert (van["id"], van["image_id"], van["category_id"], van["iscrowd"]) == (5, 7, 7, 0)
    assert van["bbox"] == [200.0, 200.0, 100.0, 50.0] and van["area"] == 5000.0
    assert van["visible_bbox"] == [200.0, 200.0, 100.0, 20.0] and van["visible_area"] == 2000.0
    assert van["occlusion_rate"] == pytest.approx(0.6)
    assert van["source"] == {"oco_id": 3, "ico_id": 2}
    np.testing.assert_array_equal(decoded(van["visible_mask"]), rect(KINS_H, KINS_W, 200, 200, 300, 220))
    assert (tram["id"], tram["category_id"], tram["area"], tram["occlusion_rate"]) == (6, 5, 900.0, 0.0)
    assert tram["bbox"] == tram["visible_bbox"] == [0.0, 0.0, 30.0, 30.0]
    assert tram["source"] == {"oco_id": 4, "ico_id": 0}
    assert result.report.occlusion_histogram == [1, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert stock_cocoeval_ap(result.dataset.split_path("val")) == pytest.approx(1.0)


def test_a_kins2020_file_given_to_kins_names_the_right_command(tmp_path):
    annotation_file, images = kins2020_files(tmp_path / "src")
    with pytest.raises(InputError) as error:
        prepare_real(RealPrepareRequest("kins", (annotation_file,), images, out_dir=tmp_path / "k"))
    message = str(error.value)
    assert message.startswith(f"{annotation_file}: not a KINS annotation file")
    assert "'inmodal_seg'" in message and "a3d prepare kins2020" in message and "\n" not in message
    assert not (tmp_path / "k").exists()
