"""``sample_data/``: a few small scenes to try the commands on in seconds, made by the scene generator.

Regenerate the committed folder with ``python -m a3d_core.data.sample_data`` (same bytes each
time). It is a canonical dataset (``a3d evaluate --dataset sample_data`` reads it) with::

    dataset.json            the manifest
    val.json                ground truth: canonical COCO JSON (amodal segmentation and bbox,
                            visible_mask, occlusion_rate, ...)
    images/val/*.png        the scenes
    visible_masks.json      the VISIBLE instance masks as COCO results (image_id, file_name,
                            category_id, score 1, segmentation = visible RLE): what an instance
                            segmenter would hand to amodal completion
    README.md               this list, for a reader of the folder

The scenes use the demo's scene settings and categories (:data:`a3d_core.pipelines.demo.FULL`), so the
demo's fine-tuned checkpoint (``demo/runs/scenes/best.pt``) applies to them; their objects (seed
11) are none of the objects the demo trains on (seed 0).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from a3d_core.data.canonical import AmodalDataset, AmodalSplit, write_dataset
from a3d_core.data.prepare_scenes import ObjectPoolSettings, ScenesRequest, prepare_scenes
from a3d_core.data.scenes import SceneSettings
from a3d_core.io.atomic import atomic_write_json, atomic_write_text

DEFAULT_OUT = Path("sample_data")
SPLIT = "val"
VISIBLE_MASKS_FILE = "visible_masks.json"
REGENERATE = "python -m a3d_core.data.sample_data"

REQUEST = ScenesRequest(
    train_images=1,
    val_images=4,
    categories=("airplane", "car", "chair"),
    scene=SceneSettings(width=128, height=96, objects_min=2, objects_max=4),
    pool=ObjectPoolSettings(train_objects=1, val_objects=3, views_per_object=2),
    seed=11,
)
"""Four val scenes (the one train scene is thrown away: the generator needs a train split)."""

README = f"""# sample_data

Four small scenes made by a3d's own scene generator (`{REGENERATE}` regenerates exactly these
files), to try the commands on in seconds:

- `images/val/*.png`: 128x96 scenes of airplanes, cars and chairs occluding each other;
- `visible_masks.json`: their VISIBLE instance masks as COCO results (`image_id`, `file_name`,
  `category_id`, `score`, `segmentation` = visible RLE), as an instance segmenter would give them;
- `val.json`: the ground truth, canonical COCO JSON (`segmentation` = amodal mask, `visible_mask`,
  `occlusion_rate`, ...); with `dataset.json` the folder is a dataset `a3d evaluate --dataset sample_data` reads.

```bash
a3d predict sample_data/images/val --checkpoint demo/runs/scenes/best.pt --out masks/   # after `a3d demo`
```
"""


def visible_mask_results(split: AmodalSplit) -> list[dict[str, Any]]:
    """The split's visible instance masks as COCO results (score 1), one per annotation."""
    file_names = {image["id"]: image["file_name"] for image in split.images}
    return [
        {
            "image_id": annotation["image_id"],
            "file_name": file_names[annotation["image_id"]],
            "category_id": annotation["category_id"],
            "score": 1.0,
            "segmentation": annotation["visible_mask"],
        }
        for annotation in split.annotations
    ]


def write_sample_data(out: str | os.PathLike = DEFAULT_OUT, request: ScenesRequest = REQUEST) -> AmodalDataset:
    """Generate the scenes of ``request`` and write its val split to ``out`` (replaced whole, atomically)."""
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="a3d-sample-") as scratch:
        scenes = prepare_scenes(
            dataclasses.replace(request, out_dir=Path(scratch) / "scenes", preview_path=None)
        ).dataset
        split = scenes.load_split(SPLIT)
        images = [(str(image["file_name"]), scenes.image_path(image).read_bytes()) for image in split.images]
        dataset = write_dataset(
            out,
            name="sample_data",
            source="scenes",
            splits={SPLIT: split},
            overwrite=True,
            write_images=images,
            extra_manifest={"regenerate": REGENERATE},
        )
    atomic_write_json(out / VISIBLE_MASKS_FILE, visible_mask_results(split))
    atomic_write_text(out / "README.md", README)
    return dataset


if __name__ == "__main__":
    written = write_sample_data(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT)
    print(f"wrote {written.root}")
