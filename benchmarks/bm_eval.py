"""COCO evaluation speed: pycocotools vs faster-coco-eval vs a3d, same inputs, one process.

    python benchmarks/bm_eval.py                      # cocoapi sample + a generated set
    python benchmarks/bm_eval.py --images 500 --detections 100
    python benchmarks/bm_eval.py --scale --skip-reference   # 5,000 images x 100 detections (480x640
                                                            # rectangles as RLE), a3d only
    python benchmarks/bm_eval.py --device cuda

Each tool does the same work from in-memory JSON: load ground truth and results, evaluate,
accumulate, summarize (printing suppressed). Every row also checks that a3d's 12 stats equal
pycocotools' (max |difference|). ``--threads`` sets torch's CPU threads (default 1: fair against
the single-threaded pycocotools, and fastest on a shared machine). Peak memory is the process's
maximum resident set size, printed once the inputs exist and again at the end. Run from the
checkout as ``PYTHONPATH=. python benchmarks/bm_eval.py`` so that its ``a3d_core`` is the one timed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import resource
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from a3d_core.eval.coco_inputs import evaluate_coco, load_detections, load_ground_truth
from a3d_core.eval.synthetic import SyntheticCocoSettings, synthetic_coco

COCOAPI = Path(
    os.environ.get(
        "A3D_COCOAPI_DIR",
        next(
            (
                folder / "shared" / "data" / "cocoapi"
                for folder in Path(__file__).resolve().parents
                if (folder / "shared" / "data" / "cocoapi").is_dir()
            ),
            "cocoapi",
        ),
    )
)


def run_pycocotools(ground_truth: dict, results: list, iou_type: str) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return np.asarray(evaluation.stats)


def run_faster_coco_eval(ground_truth: dict, results: list, iou_type: str) -> np.ndarray:
    from faster_coco_eval import COCO as FasterCOCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        gt = FasterCOCO(ground_truth)
        evaluation = COCOeval_faster(gt, gt.loadRes(results), iou_type, print_function=lambda *args: None)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return np.asarray(evaluation.stats[:12])


def run_a3d(ground_truth: dict, results: list, iou_type: str, device: str) -> np.ndarray:
    masks = iou_type == "segm"
    gt = load_ground_truth(ground_truth, with_masks=masks)
    stats = evaluate_coco(gt, load_detections(results, gt, with_masks=masks), iou_type, device=device).stats
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return np.asarray(list(stats.values()))


def timed(
    function: Callable[[dict, list], np.ndarray], ground_truth: dict, results: list, repeat: int
) -> tuple[float, np.ndarray]:
    """Best wall time of ``function(gt, results)`` on fresh copies (pycocotools edits its inputs);
    copying is not timed."""
    best, stats = float("inf"), np.zeros(12)
    for _ in range(repeat):
        gt_copy, results_copy = copy.deepcopy(ground_truth), copy.deepcopy(results)
        start = time.perf_counter()
        stats = function(gt_copy, results_copy)
        best = min(best, time.perf_counter() - start)
    return best, stats


def peak_memory_gib() -> float:
    """The process's maximum resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def faster_available() -> bool:
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        return False
    return True


def with_boxes(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results with ``bbox`` only (box evaluation), boxes from the masks."""
    from pycocotools import mask as mask_utils

    boxes = mask_utils.toBbox(
        [{"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()} for r in results]
    )
    return [
        {"image_id": r["image_id"], "category_id": r["category_id"], "score": r["score"], "bbox": list(map(float, b))}
        for r, b in zip(results, boxes)
    ]


def box_masks_coco(
    images: int, detections: int, height: int, width: int, categories: int = 10, seed: int = 0
) -> tuple[dict, list]:
    """A large evaluation fast: rectangle masks made as RLEs directly (no dense masks), ~15
    objects and ``detections`` detections per image (70% near an object), rounded scores."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    gt = {"images": [], "annotations": [], "categories": [{"id": k + 1, "name": f"c{k}"} for k in range(categories)]}
    results = []

    def rectangles(count: int) -> np.ndarray:
        w = rng.integers(4, width // 2, count)
        h = rng.integers(4, height // 2, count)
        return np.stack([rng.integers(0, width - w), rng.integers(0, height - h), w, h], 1).astype(np.float64)

    for image_id in range(1, images + 1):
        gt["images"].append({"id": image_id, "height": height, "width": width})
        objects = rectangles(int(rng.integers(1, 30)))
        object_cats = rng.integers(1, categories + 1, len(objects))
        for box, rle, cat in zip(objects, mask_utils.frPyObjects(objects, height, width), object_cats):
            gt["annotations"].append(
                {"id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": int(cat), "bbox": box.tolist(),
                 "area": float(box[2] * box[3]), "iscrowd": int(rng.random() < 0.02),
                 "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")}}
            )  # fmt: skip
        near = rng.random(detections) < 0.7
        pick = rng.integers(0, len(objects), detections)
        boxes = np.where(near[:, None], objects[pick] + rng.integers(-6, 7, (detections, 4)), rectangles(detections))
        boxes[:, 2:] = np.maximum(boxes[:, 2:], 1)
        boxes[:, :2] = np.clip(boxes[:, :2], 0, [width - 1, height - 1])
        boxes[:, 2] = np.minimum(boxes[:, 2], width - boxes[:, 0])
        boxes[:, 3] = np.minimum(boxes[:, 3], height - boxes[:, 1])
        cats = np.where(near, object_cats[pick], rng.integers(1, categories + 1, detections))
        scores = np.round(rng.random(detections), 2)
        for rle, cat, score in zip(
            mask_utils.frPyObjects(np.ascontiguousarray(boxes, dtype=np.float64), height, width), cats, scores
        ):
            segmentation = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
            results.append(
                {"image_id": image_id, "category_id": int(cat), "score": float(score), "segmentation": segmentation}
            )
    return gt, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="generated images")
    parser.add_argument("--detections", type=int, default=100, help="generated detections per image")
    parser.add_argument("--size", type=int, default=256, help="generated image side (pixels)")
    parser.add_argument("--scale", action="store_true", help="5,000 images x 100 rectangle detections at 480x640")
    parser.add_argument("--skip-reference", action="store_true", help="time a3d only (for --scale)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cases: list[tuple[str, dict, list, str]] = []
    if COCOAPI.is_dir() and not args.scale:
        gt = json.loads((COCOAPI / "instances_val2014_100.json").read_text())
        for iou_type in ("segm", "bbox"):
            results = json.loads((COCOAPI / f"instances_val2014_fake{iou_type}100_results.json").read_text())
            cases.append(("cocoapi 100 img", gt, results, iou_type))
    start = time.perf_counter()
    if args.scale:
        images, detections = 5000, 100
        gt, results = box_masks_coco(images, detections, 480, 640)
        name = f"boxes {images}x{detections}"
    else:
        images, detections = args.images, args.detections
        settings = SyntheticCocoSettings(
            images=images, categories=10, height=(args.size, args.size), width=(args.size, args.size), max_objects=15,
            detections_per_image=(detections, detections), empty_gt_rate=0.02, empty_det_rate=0.0, polygon_rate=0.0,
        )  # fmt: skip
        gt, results = synthetic_coco(settings, seed=0)
        name = f"generated {images}x{detections}"
    print(f"generated {images} images x {detections} detections in {time.perf_counter() - start:.1f} s")
    print(f"peak resident memory with the inputs alone: {peak_memory_gib():.2f} GiB")
    cases.append((name, gt, results, "segm"))
    cases.append((name, gt, with_boxes(results), "bbox"))

    repeat = 1 if args.scale else args.repeat
    header = (
        f"{'inputs':<22} {'type':<5} {'pycocotools s':>13} {'faster-coco-eval s':>18} "
        f"{f'a3d ({args.device}) s':>14} {'vs pycoco':>9} {'vs faster':>9} {'max |Δstat|':>11}"
    )
    print(f"torch threads: {args.threads}, best of {repeat}")
    print(header)
    print("-" * len(header))
    for name, ground_truth, result_list, iou_type in cases:
        a3d_time, a3d_stats = timed(
            lambda g, r: run_a3d(g, r, iou_type, args.device), ground_truth, result_list, repeat
        )
        if args.skip_reference:
            print(f"{name:<22} {iou_type:<5} {'-':>13} {'-':>18} {a3d_time:>14.3f} {'-':>9} {'-':>9} {'-':>11}")
            continue
        py_time, py_stats = timed(lambda g, r: run_pycocotools(g, r, iou_type), ground_truth, result_list, repeat)
        if faster_available():
            fast_time, _ = timed(lambda g, r: run_faster_coco_eval(g, r, iou_type), ground_truth, result_list, repeat)
            fast_text, ratio_fast = f"{fast_time:.3f}", f"{fast_time / a3d_time:.2f}x"
        else:
            fast_text, ratio_fast = "n/a", "-"
        difference = float(np.abs(a3d_stats - py_stats).max())
        print(
            f"{name:<22} {iou_type:<5} {py_time:>13.3f} {fast_text:>18} {a3d_time:>14.3f} "
            f"{py_time / a3d_time:>8.2f}x {ratio_fast:>9} {difference:>11.1e}"
        )
    print(f"peak resident memory: {peak_memory_gib():.2f} GiB")


if __name__ == "__main__":
    main()
