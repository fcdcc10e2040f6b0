"""A short pilot of one A3D variant on the viewpoint benchmark's data, judged on val only.

Run by hand (after ``bm_viewpoints.py --scale cpu`` has prepared the data)::

    python benchmarks/bm_viewpoint_pilot.py --data bench-viewpoints-cpu/data --out pilots/cycle \\
        --instances 8000 --model a3d-1-camera --set losses.view_cycle_camera=1 --set losses.view_cycle_shape=1

The variant is one of the benchmark's model specs (``--model``, its slug) with more stage-2
settings overridden (``--set PATH=VALUE``: a dotted path into
:class:`~a3d_core.model.asm.ASMSettings`, a JSON value), so that a new stage-2 option is piloted
without changing this script. It trains with the benchmark's own ``train_model`` (same flips,
framing, optimiser, checkpoint chosen on val) for ``--instances`` training instances, then
prints, on ``val`` only, what docs/stage2.md's "Viewpoint learning: what was tried" table reports: val mIoU, the median
azimuth error after a per-category alignment fitted on val itself (optimistic, alike for every
variant), the share within 30 degrees, the spread of predicted azimuths per category, and the
novel-view IoU of val inputs beside reusing the input view's mask, the voxel IoU of the meshes with
the true ones (as the benchmark's, beside the template sphere's); and, on the train split, the
median azimuth error with one alignment per category against one per object (fitted on those
views themselves): how far the cameras share one frame per category. Test splits are not read:
ideas are chosen here, the benchmark scores the chosen ones once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from a3d_core.boxes import DEFAULT_CROP_SCALE
from a3d_core.data.shapenet import read_shard_manifest
from a3d_core.eval.instances import collect_instances
from a3d_core.eval.viewpoint_diagnostics import novel_view_ious, viewpoint_errors
from a3d_core.experiments.viewpoints.evaluation import (
    cpu_renderer,
    input_masks,
    mesh_ious,
    novel_view_targets,
    reference_sphere,
    true_meshes,
)
from a3d_core.experiments.viewpoints.specs import ALL_MODELS, SCALES
from a3d_core.experiments.viewpoints.training import open_split, train_model
from a3d_core.io.atomic import atomic_write_json
from a3d_core.model.asm import load_stage2_from_checkpoint


def val_diagnostics(model, data: Path) -> dict:
    """Viewpoint errors, azimuth spread and novel-view IoU of ``model`` on ``data``'s val split."""
    dataset = open_split(data, "val")
    table = collect_instances(model, dataset, device=torch.device("cpu"), keep_meshes=True)
    errors = viewpoint_errors(table)
    targets = novel_view_targets(data, ["val"])
    inputs = input_masks(table, targets)
    novel = {
        result.step.label: {
            "mesh": 100 * float(np.mean(result.mesh_iou)),
            "reuse": 100 * float(np.mean(result.reuse_iou)),
        }
        for result in novel_view_ious(
            table, inputs, targets, cpu_renderer(model), errors.alignments, DEFAULT_CROP_SCALE
        )
        if len(result.mesh_iou)
    }
    spread = {
        dataset.categories[int(c)]: float(np.ptp(table.predicted_azimuth[table.category == c]))
        for c in np.unique(table.category)
    }
    truths = true_meshes(read_shard_manifest(data))
    faces = model.mask_branch.faces.numpy()
    shapes = mesh_ious([table], faces, [errors.alignments], truths, reference_sphere(model), resamples=200, seed=0)
    shapes["per_category"] = {dataset.categories[c]: value for c, value in shapes["per_category"].items()}
    return {"viewpoint": errors.summary(), "azimuth_spread_deg": spread, "novel_view": novel, "shapes_3d": shapes}


def frame_consistency(model, data: Path) -> dict:
    """Median azimuth error (degrees) and share within 30 on the train split, with the alignment
    fitted per category and per object: cameras that follow each object but in frames that differ
    between a category's objects show a large gap."""
    table = collect_instances(model, open_split(data, "train"), device=torch.device("cpu"))
    result = {}
    for frame, table_in_frame in (
        ("category", table),
        ("object", dataclasses.replace(table, category=table.object_index)),
    ):
        errors = viewpoint_errors(table_in_frame)
        result[frame] = {
            "median_azimuth_error": float(np.median(errors.azimuth)),
            "share_within_30": float(np.mean(errors.azimuth < 30)),
        }
    return result


def parse_override(text: str) -> tuple[str, Any]:
    """``"viewpoint.azimuth_hypotheses=1"`` -> ``("viewpoint.azimuth_hypotheses", 1)`` (the value as
    JSON, else the plain string)."""
    path, separator, value = text.partition("=")
    if not separator or not path:
        raise argparse.ArgumentTypeError(f"expected PATH=VALUE, got {text!r}")
    try:
        return path, json.loads(value)
    except json.JSONDecodeError:
        return path, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the benchmark's prepared data (its cpu scale)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--instances", type=int, default=8000)
    parser.add_argument(
        "--model",
        default="a3d-1-camera",
        choices=[spec.slug for spec in ALL_MODELS if spec.trained and spec.is_3d],
        help="the benchmark's model spec the variant starts from",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        type=parse_override,
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="a stage-2 setting overridden, e.g. viewpoint.hypothesis_selection=scores (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scale = dataclasses.replace(SCALES["cpu"], instances=args.instances, validations=4)
    base = next(spec for spec in ALL_MODELS if spec.slug == args.model)
    spec = dataclasses.replace(
        base, name=args.out.name, description="pilot", stage2={**base.stage2, **dict(args.overrides)}
    )
    record = train_model(spec, scale, args.data, args.out, args.seed, "cpu", print)
    model = load_stage2_from_checkpoint(record["checkpoint"]).eval()
    result = {"settings": vars(args) | {"data": str(args.data), "out": str(args.out)}, "train": record}
    result |= val_diagnostics(model, args.data)
    result["train_frames"] = frame_consistency(model, args.data)
    atomic_write_json(args.out / "pilot.json", result, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
