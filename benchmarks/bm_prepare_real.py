"""Throughput of ``prepare_real`` (read, check, convert, write) against a bare pycocotools
conversion (decode amodal + visible, re-encode; no checks, no writing) on the same synthetic files.

Run by hand: ``python benchmarks/bm_prepare_real.py``. Prints one table; not part of the tests.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from a3d_core.data.prepare_real import RealPrepareRequest, prepare_real

CASES = (  # (name, height, width, images, instances per image)
    ("KINS-sized", 375, 1242, 20, 10),
    ("D2SA-sized", 1440, 1920, 5, 8),
)


def _synthetic_kins(root: Path, height: int, width: int, images: int, per_image: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    image_dir = root / "images"
    image_dir.mkdir(parents=True)
    image_entries, annotations = [], []
    for image_id in range(1, images + 1):
        Image.new("L", (width, height)).save(image_dir / f"{image_id:06d}.png")
        image_entries.append({"id": image_id, "file_name": f"{image_id:06d}.png", "width": width, "height": height})
        for _ in range(per_image):
            w, h = int(rng.integers(20, width // 3)), int(rng.integers(20, height // 3))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            visible = np.zeros((height, width), np.uint8)
            visible[y : y + h, x : x + w // 2] = 1
            rle = mask_utils.encode(np.asfortranarray(visible))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                    "bbox": [x, y, w, h],
                    "inmodal_seg": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                }
            )
    path = root / "instances.json"
    path.write_text(
        json.dumps({"images": image_entries, "annotations": annotations, "categories": [{"id": 1, "name": "car"}]})
    )
    return path, image_dir


def _bare_pycocotools(path: Path) -> int:
    data = json.loads(path.read_text())
    sizes = {image["id"]: (image["height"], image["width"]) for image in data["images"]}
    for annotation in data["annotations"]:
        height, width = sizes[annotation["image_id"]]
        amodal = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(annotation["segmentation"], height, width)))
        visible = mask_utils.decode(annotation["inmodal_seg"]) & amodal
        mask_utils.encode(np.asfortranarray(amodal))
        mask_utils.encode(np.asfortranarray(visible))
    return len(data["annotations"])


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, height, width, images, per_image in CASES:
            root = Path(tmp) / name
            annotation_file, image_dir = _synthetic_kins(root, height, width, images, per_image)
            start = time.perf_counter()
            count = _bare_pycocotools(annotation_file)
            bare = time.perf_counter() - start
            start = time.perf_counter()
            result = prepare_real(RealPrepareRequest("kins", (annotation_file,), image_dir, out_dir=root / "out"))
            full = time.perf_counter() - start
            assert result.report.instances == count and not result.report.problems
            rows.append((name, f"{height}x{width}", count, 1000 * bare / count, 1000 * full / count, full / bare))
    print(f"{'case':<12} {'image':>10} {'instances':>9} {'bare ms/inst':>13} {'a3d ms/inst':>12} {'ratio':>6}")
    for name, size, count, bare_ms, full_ms, ratio in rows:
        print(f"{name:<12} {size:>10} {count:>9} {bare_ms:>13.2f} {full_ms:>12.2f} {ratio:>6.2f}")


if __name__ == "__main__":
    main()
