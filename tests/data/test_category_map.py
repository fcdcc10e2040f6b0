"""The shipped category map: real datasets' class names -> the 13 ShapeNet / built-in categories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from a3d_core.data.category_map import DEFAULT_CATEGORY_MAPS, CategoryMap, default_category_map, read_category_map
from a3d_core.data.shapes import CATEGORIES
from a3d_core.errors import InputError
from tests.data.formats_fixtures import KINS_CATEGORIES

COCO_NAMES = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
"""COCO's 80 class names, as COCOA-cls lists them."""


def test_the_coco_reference_list_has_the_80_classes() -> None:
    assert len(COCO_NAMES) == 80 == len(set(COCO_NAMES)) and "dining table" in COCO_NAMES and "tv" in COCO_NAMES


def test_every_entry_names_a_real_class_and_one_of_the_13_categories() -> None:
    assert all(target in CATEGORIES for table in DEFAULT_CATEGORY_MAPS.values() for target in table.values())
    assert set(DEFAULT_CATEGORY_MAPS["cocoa-cls"]) <= set(COCO_NAMES)
    kins = {category["name"] for category in KINS_CATEGORIES}
    assert set(DEFAULT_CATEGORY_MAPS["kins"]) <= kins and set(DEFAULT_CATEGORY_MAPS["kins2020"]) <= kins
    merged = default_category_map()
    assert all(merged[name] == target for table in DEFAULT_CATEGORY_MAPS.values() for name, target in table.items())


def test_overlap_counts_as_docs_twostage_md_states() -> None:
    """Mapped classes and the distinct categories they reach (paper Table 3: KINS 1, COCOA-cls 13, D2SA 2)."""
    counts = {name: (len(table), len(set(table.values()))) for name, table in DEFAULT_CATEGORY_MAPS.items()}
    assert counts == {"kins": (3, 1), "kins2020": (3, 1), "cocoa-cls": (10, 9), "d2sa": (0, 0), "cocoa": (0, 0)}
    resolved = CategoryMap().resolve(list(COCO_NAMES), CATEGORIES)
    assert resolved["couch"] == "sofa" and resolved["tv"] == "display" and "bus" not in resolved and len(resolved) == 10
    assert CategoryMap().resolve(["object"], CATEGORIES) == {}  # class-agnostic COCOA starts fresh
    # the built-in scenes
    assert CategoryMap().resolve(list(CATEGORIES), CATEGORIES) == {name: name for name in CATEGORIES}


def test_a_user_file_overrides_the_shipped_entries(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"bus": "car", "truck": None}))
    names = ["car", "truck", "bus", "van"]
    assert CategoryMap.load(path).resolve(names, ["car"]) == {"car": "car", "bus": "car", "van": "car"}
    assert CategoryMap.load(path, shipped=False).resolve(names, ["car"]) == {"car": "car", "bus": "car"}
    assert CategoryMap(shipped=False).resolve(names, ["car"]) == {"car": "car"}


@pytest.mark.parametrize(
    "content, message",
    [
        ('["couch", "sofa"]', "expected a JSON object mapping dataset class names"),
        ('{"couch": 3}', "expected a JSON object mapping dataset class names"),
        ('{"couch": ', "malformed JSON"),
    ],
)
def test_malformed_map_files_are_refused_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(InputError, match=rf"map\.json: {message}"):
        read_category_map(path)
