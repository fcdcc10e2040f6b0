"""Bad input: each problem found with its annotation id, skipped and counted, fatal with strict;
one-line errors for unreadable or wrong-layout files; splits added to a dataset atomically."""

import json

import numpy as np
import pytest

from a3d_core.data.prepare_real import VISIBLE_CLIPPED_NOTE, RealPrepareRequest, prepare_real
from a3d_core.data.problems import ProblemKind
from a3d_core.data.validate import StrictValidationError, ValidationSettings, rle_string_counts
from a3d_core.errors import InputError
from tests.data.formats_fixtures import (
    blank_image,
    cocoa_files,
    kins_files,
    rect,
    rect_polygon,
    rle_list,
    rle_string,
    write_json,
)

H, W = 40, 60
CATEGORIES = [{"id": 1, "name": "car"}]


def _annotation(ann_id, amodal, visible, image_id=1, category_id=1, bbox=None):
    annotation = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": amodal,
        "inmodal_seg": visible,
    }
    if bbox is not None:
        annotation["bbox"] = bbox
    return annotation


def _kins_file(tmp_path, annotations, images=None, name="instances.json"):
    images = images if images is not None else [{"id": 1, "file_name": "a.png", "width": W, "height": H}]
    return write_json(tmp_path / name, {"images": images, "annotations": annotations, "categories": CATEGORIES})


def _bad_annotations():
    """(annotations, expected [(annotation id, problem kind)]) on one 40 x 60 image."""
    good_visible = rle_string(rect(H, W, 10, 10, 20, 30))
    square = [rect_polygon(10, 10, 30, 30)]
    truncated = dict(good_visible, counts=good_visible["counts"][:-2])
    nearly_inside = rect(H, W, 0, 30, 60, 40)
    nearly_inside[29, 0] = 1  # 1 of 601 visible pixels outside the amodal mask: within tolerance
    annotations = [
        _annotation(1, square, good_visible),
        _annotation(2, square, rle_string(rect(H - 10, W, 10, 10, 20, 30))),
        _annotation(3, [rect_polygon(50, 10, 70, 30)], good_visible),
        _annotation(4, square, good_visible, bbox=[50, 10, 20, 20]),
        _annotation(5, [rect_polygon(0, 0, 10, 10)], rle_string(rect(H, W, 20, 20, 30, 30))),
        _annotation(6, [[1, 1, 5, 5]], good_visible),
        _annotation(7, square, rle_list(np.zeros((H, W), np.uint8))),
        _annotation(8, [], good_visible),
        _annotation(1, square, good_visible),
        _annotation(9, square, good_visible, category_id=3),
        _annotation(10, square, good_visible, image_id=99),
        {"id": 11, "image_id": 1, "category_id": 1, "segmentation": square},
        _annotation(12, square, truncated),
        _annotation(13, [rect_polygon(0, 30, 60, 40)], rle_string(nearly_inside)),
    ]
    expected = [
        (2, ProblemKind.OUTSIDE_IMAGE),
        (3, ProblemKind.OUTSIDE_IMAGE),
        (4, ProblemKind.OUTSIDE_IMAGE),
        (5, ProblemKind.VISIBLE_OUTSIDE_AMODAL),
        (6, ProblemKind.SHORT_POLYGON),
        (7, ProblemKind.EMPTY_MASK),
        (8, ProblemKind.EMPTY_MASK),
        (1, ProblemKind.DUPLICATE_ID),
        (9, ProblemKind.UNKNOWN_CATEGORY),
        (10, ProblemKind.UNKNOWN_IMAGE),
        (11, ProblemKind.MALFORMED),
        (12, ProblemKind.MALFORMED),
    ]
    return annotations, expected


@pytest.fixture()
def images_dir(tmp_path):
    blank_image(tmp_path / "images" / "a.png", H, W)
    return tmp_path / "images"


def test_each_annotation_problem_is_named_skipped_and_counted(tmp_path, images_dir):
    annotations, expected = _bad_annotations()
    annotation_file = _kins_file(tmp_path, annotations)
    result = prepare_real(RealPrepareRequest("kins", (annotation_file,), images_dir, out_dir=tmp_path / "out"))
    report = result.report
    # the reader's problems (malformed entries) come first, then those found in file order
    found = [(p.annotation_id, p.kind) for p in report.problems]
    assert sorted(found, key=str) == sorted(expected, key=str)
    assert all(p.file == annotation_file for p in report.problems)
    assert report.skipped_instances == len(expected) and report.instances == 2
    kept = {a["id"]: a for a in result.dataset.load_split("train").annotations}
    assert sorted(kept) == [1, 13]
    assert kept[13]["visible_area"] == 600.0 and kept[13]["occlusion_rate"] == 0.0  # the stray pixel is clipped
    assert report.notes == {VISIBLE_CLIPPED_NOTE: 1}
    assert report.problem_counts[ProblemKind.OUTSIDE_IMAGE] == 3
    details = {p.annotation_id: p.detail for p in report.problems if p.kind is not ProblemKind.DUPLICATE_ID}
    assert "RLE size [30, 60]" in details[2] and "x 50..70" in details[3] and "amodal box" in details[4]
    assert "100 of 100 visible pixels" in details[5] and "2 point(s)" in details[6]
    assert "lacks 'inmodal_seg'" in details[11]


def test_strict_makes_any_problem_fatal_and_writes_nothing(tmp_path, images_dir):
    annotations, expected = _bad_annotations()
    annotation_file = _kins_file(tmp_path, annotations)
    request = RealPrepareRequest("kins", (annotation_file,), images_dir, out_dir=tmp_path / "out", strict=True)
    with pytest.raises(StrictValidationError) as error:
        prepare_real(request)
    assert len(error.value.report.problems) == len(expected)
    assert str(error.value).startswith(
        f"--strict: {len(expected)} problems found, nothing written (first: instances.json"
    )
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_image_problems_skip_the_image_and_its_annotations(tmp_path, images_dir):
    (images_dir / "broken.png").write_bytes(b"this is not a png")
    blank_image(images_dir / "small.png", H - 1, W)
    images = [
        {"id": 1, "file_name": "a.png", "width": W, "height": H},
        {"id": 2, "file_name": "missing.png", "width": W, "height": H},
        {"id": 3, "file_name": "broken.png", "width": W, "height": H},
        {"id": 4, "file_name": "small.png", "width": W, "height": H},
    ]
    square, visible = [rect_polygon(10, 10, 30, 30)], rle_string(rect(H, W, 10, 10, 20, 30))
    annotations = [_annotation(i, square, visible, image_id=i) for i in (1, 2, 3, 4)]
    result = prepare_real(
        RealPrepareRequest("kins", (_kins_file(tmp_path, annotations, images),), images_dir, out_dir=tmp_path / "o")
    )
    report = result.report
    assert [(p.image_id, p.kind) for p in report.problems] == [
        (2, ProblemKind.MISSING_IMAGE),
        (3, ProblemKind.UNREADABLE_IMAGE),
        (4, ProblemKind.IMAGE_SIZE),
    ]
    assert "small.png is 60x39 (w x h), the JSON says 60x40" in report.problems[2].detail
    assert (report.images, report.instances, report.skipped_images, report.skipped_instances) == (1, 1, 3, 3)
    assert report.notes == {"annotations on skipped images": 3}
    assert [image["id"] for image in result.dataset.load_split("train").images] == [1]


def test_unreadable_and_wrong_layout_files_get_one_line_errors(tmp_path, images_dir):
    def error_of(layout, path):
        with pytest.raises(InputError) as error:
            prepare_real(RealPrepareRequest(layout, (path,), images_dir, out_dir=tmp_path / "out"))
        assert "\n" not in str(error.value)
        return str(error.value)

    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    assert error_of("kins", broken).startswith(f"{broken}: malformed JSON")
    kins_file, _ = kins_files(tmp_path / "kins")
    message = error_of("d2sa", kins_file)
    assert message.startswith(f"{kins_file}: not a D2SA annotation file: expected annotations with 'segmentation'")
    assert "looks like a KINS file (use `a3d prepare kins`)" in message
    cocoa_file, _ = cocoa_files(tmp_path / "cocoa")
    assert "looks like a COCOA file" in error_of("cocoa-cls", cocoa_file)
    assert "expected one annotation per image with a 'regions' list" in error_of("cocoa", kins_file)
    as_list = write_json(tmp_path / "list.json", [1, 2])
    assert "the JSON is a list" in error_of("kins", as_list)
    no_images = write_json(tmp_path / "no_images.json", {"annotations": []})
    assert "no 'images' list" in error_of("kins", no_images)
    plain_coco = write_json(
        tmp_path / "coco.json", {"images": [], "annotations": [{"id": 1, "segmentation": [], "bbox": []}]}
    )
    assert "its annotations have the keys bbox, id, segmentation" in error_of("kins2020", plain_coco)
    bad_image = _kins_file(
        tmp_path, [], [{"id": 1, "file_name": "a.png", "width": "wide", "height": H}], "bad_image.json"
    )
    assert "images[0] needs an integer 'id', 'width', 'height'" in error_of("kins", bad_image)
    assert not (tmp_path / "out").exists()


def test_bad_options_are_refused_early(tmp_path, images_dir):
    annotation_file = _kins_file(tmp_path, [])
    with pytest.raises(InputError, match="image folder not found"):
        prepare_real(RealPrepareRequest("kins", (annotation_file,), tmp_path / "nowhere", out_dir=tmp_path / "o"))
    with pytest.raises(InputError, match="split name"):
        RealPrepareRequest("kins", (annotation_file,), images_dir, split="../evil")
    with pytest.raises(InputError, match="unknown layout 'kitti'"):
        RealPrepareRequest("kitti", (annotation_file,), images_dir)
    with pytest.raises(InputError, match="at least one annotation file"):
        RealPrepareRequest("kins", (), images_dir)
    with pytest.raises(ValueError, match="visible_outside_tolerance"):
        ValidationSettings(visible_outside_tolerance=1.5)
    with pytest.raises(ValueError, match="boundary_slack"):
        ValidationSettings(boundary_slack=float("nan"))


def test_rle_string_decoder_agrees_with_pycocotools():
    rng = np.random.default_rng(0)
    for density in (0.0, 0.1, 0.5, 0.9, 1.0):
        mask = (rng.random((23, 31)) < density).astype(np.uint8)
        assert rle_string_counts(rle_string(mask)["counts"]) == rle_list(mask)["counts"]
    # by hand: columns 0..9 hold 10 ones then 30 zeros; columns 10..59 are 50 x 40 zeros
    assert rle_string_counts(rle_string(rect(H, W, 0, 0, 10, 10))["counts"]) == [0] + [10, 30] * 9 + [10, 2030]


# ------------------------------------------------------------------------- splits of a dataset
def _two_kins_folders(tmp_path):
    """KINS-like train and val files whose images live in training/image_2 and testing/image_2."""
    square, visible = [rect_polygon(10, 10, 30, 30)], rle_string(rect(H, W, 10, 10, 20, 30))
    files = {}
    for split, folder in (("train", "training"), ("val", "testing")):
        blank_image(tmp_path / "kitti" / folder / "image_2" / f"{split}.png", H, W)
        images = [{"id": 1, "file_name": f"{split}.png", "width": W, "height": H}]
        files[split] = _kins_file(tmp_path, [_annotation(1, square, visible)], images, f"{split}.json")
    return files


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_second_split_is_added_and_image_paths_stay_valid(tmp_path):
    files = _two_kins_folders(tmp_path)
    kitti = tmp_path / "kitti"
    prepare_real(RealPrepareRequest("kins", (files["train"],), kitti / "training" / "image_2", out_dir=tmp_path / "ds"))
    result = prepare_real(
        RealPrepareRequest("kins", (files["val"],), kitti / "testing" / "image_2", split="val", out_dir=tmp_path / "ds")
    )
    dataset = result.dataset
    assert dataset.splits == ["train", "val"] and not result.replaced_split
    assert dataset.manifest["image_root"] == str(kitti.resolve())  # the common parent of both folders
    train, val = dataset.load_split("train"), dataset.load_split("val")
    assert train.images[0]["file_name"] == "training/image_2/train.png"
    assert val.images[0]["file_name"] == "testing/image_2/val.png"
    assert dataset.image_path(train.images[0]).is_file() and dataset.image_path(val.images[0]).is_file()
    assert len(train.annotations) == len(val.annotations) == 1


def test_existing_splits_are_never_replaced_without_overwrite_nor_touched_on_failure(tmp_path):
    files = _two_kins_folders(tmp_path)
    images = tmp_path / "kitti" / "training" / "image_2"
    out = tmp_path / "ds"
    prepare_real(RealPrepareRequest("kins", (files["train"],), images, out_dir=out))
    before = _snapshot(out)
    with pytest.raises(InputError, match="split 'train' already exists .pass --overwrite"):
        prepare_real(RealPrepareRequest("kins", (files["train"],), images, out_dir=out))
    bad = _kins_file(
        tmp_path,
        [_annotation(1, [[1, 1, 2, 2]], rle_string(rect(H, W, 0, 0, 5, 5)))],
        [{"id": 1, "file_name": "train.png", "width": W, "height": H}],
        "bad.json",
    )
    with pytest.raises(StrictValidationError):
        prepare_real(RealPrepareRequest("kins", (bad,), images, split="val", out_dir=out, strict=True))
    with pytest.raises(InputError, match="prepared from 'kins', not 'kins2020'"):
        prepare_real(RealPrepareRequest("kins2020", (files["train"],), images, split="val", out_dir=out))
    assert _snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    # --overwrite replaces that split only (here: an empty one) and keeps the others
    prepare_real(
        RealPrepareRequest(
            "kins", (files["val"],), tmp_path / "kitti" / "testing" / "image_2", split="val", out_dir=out
        )
    )
    empty = _kins_file(tmp_path, [], [], "empty.json")
    result = prepare_real(RealPrepareRequest("kins", (empty,), images, out_dir=out, overwrite=True))
    assert result.replaced_split and result.dataset.splits == ["train", "val"]
    assert result.dataset.load_split("train").annotations == []
    assert len(result.dataset.load_split("val").annotations) == 1


def test_a_folder_that_is_not_a_dataset_is_refused(tmp_path, images_dir):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    annotation_file = _kins_file(tmp_path, [])
    with pytest.raises(InputError, match="is not an a3d dataset"):
        prepare_real(
            RealPrepareRequest("kins", (annotation_file,), images_dir, out_dir=tmp_path / "mine", overwrite=True)
        )
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_an_empty_folder_is_filled(tmp_path, images_dir):
    (tmp_path / "empty").mkdir()
    result = prepare_real(
        RealPrepareRequest("kins", (_kins_file(tmp_path, []),), images_dir, out_dir=tmp_path / "empty")
    )
    assert result.dataset.splits == ["train"] and (tmp_path / "empty" / "train.json").is_file()


def test_default_out_dir_is_under_the_data_root(tmp_path, images_dir, monkeypatch):
    annotation_file = _kins_file(tmp_path, [])
    monkeypatch.setenv("A3D_DATA_ROOT", str(tmp_path / "env_root"))
    assert (
        prepare_real(RealPrepareRequest("kins", (annotation_file,), images_dir)).dataset.root
        == tmp_path / "env_root" / "kins"
    )
    explicit = RealPrepareRequest("kins", (annotation_file,), images_dir, data_root_dir=tmp_path / "flag_root")
    assert prepare_real(explicit).dataset.root == tmp_path / "flag_root" / "kins"
    manifest = json.loads((tmp_path / "flag_root" / "kins" / "dataset.json").read_text())
    assert manifest["image_root"] == str(images_dir.resolve())
