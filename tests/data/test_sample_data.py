"""``sample_data/``: the committed files are what the generator writes, and they agree with each other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from a3d_core.data.canonical import decode_segmentation, read_dataset
from a3d_core.data.sample_data import REQUEST, SPLIT, VISIBLE_MASKS_FILE, write_sample_data
from a3d_core.eval.evaluate import EvaluationSettings, evaluate_dataset
from a3d_core.io.images import read_image
from a3d_core.pipelines.demo import FULL

COMMITTED = Path(__file__).resolve().parents[2] / "sample_data"


def _files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_the_generator_rewrites_exactly_the_committed_files(tmp_path):
    write_sample_data(tmp_path / "sample_data")
    regenerated, committed = _files(tmp_path / "sample_data"), _files(COMMITTED)
    assert sorted(regenerated) == sorted(committed)
    changed = [name for name in committed if regenerated[name] != committed[name]]
    assert not changed, f"sample_data/ is stale in {changed}: run `python -m a3d_core.data.sample_data`"
    assert sum(map(len, committed.values())) < 200_000  # small files only


def test_visible_masks_ground_truth_and_images_agree():
    dataset = read_dataset(COMMITTED)
    split = dataset.load_split(SPLIT)
    visible = json.loads((COMMITTED / VISIBLE_MASKS_FILE).read_text())
    images = {image["id"]: image for image in split.images}
    assert 3 <= len(images) <= 4 and len(visible) == len(split.annotations)
    assert any(annotation["occlusion_rate"] > 0.2 for annotation in split.annotations)  # there is something to complete
    for entry, annotation in zip(visible, split.annotations):
        image = images[entry["image_id"]]
        assert entry["file_name"] == image["file_name"] and entry["category_id"] == annotation["category_id"]
        assert read_image(dataset.image_path(image)).shape == (image["height"], image["width"], 3)
        mask = decode_segmentation(entry["segmentation"], image["height"], image["width"])
        amodal = decode_segmentation(annotation["segmentation"], image["height"], image["width"])
        # the visible part lies in the amodal mask
        assert mask.sum() == annotation["visible_area"] and np.all(amodal[mask > 0] > 0)


def test_the_evaluator_reads_the_folder_and_the_visible_masks_miss_the_hidden_parts():
    result = evaluate_dataset(
        COMMITTED, COMMITTED / VISIBLE_MASKS_FILE, SPLIT, EvaluationSettings(kinds=("amodal",), device="cpu")
    )
    assert (
        result.segments is not None
        and 0.5 < result.segments.miou < 1.0
        and result.segments.miou_occ < result.segments.miou
    )


def test_the_scenes_are_the_demos_so_its_checkpoint_applies():
    assert REQUEST.categories == FULL.categories
    assert (REQUEST.scene.width, REQUEST.scene.height) == (FULL.scene_width, FULL.scene_height)
    assert (REQUEST.scene.objects_min, REQUEST.scene.objects_max) == FULL.scene_objects
