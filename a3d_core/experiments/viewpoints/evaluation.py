"""The viewpoint benchmark's evaluation: per-instance tables, mIoU with intervals, paired
differences, and the 3D diagnostics of the A3D models.

Each model's :class:`~a3d_core.eval.instances.InstanceTable` of every split is cached under its
run folder (``tables/<split>.npz``). Metrics: mIoU per category and its mean over categories,
mIoU of the hidden part, 95% bootstrap intervals over test objects, differences paired by
instance (:mod:`a3d_core.eval.intervals`). 3D diagnostics (:func:`diagnostics_3d`): viewpoint
error after the per-category alignment fitted on ``val``, novel-view IoU against reusing the
input view's mask, and the meshes' voxel IoU with the true meshes (:mod:`a3d_core.eval.shape3d`)
beside the template sphere's. They leave the model where it is, on its device and in its mode.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from a3d_core.boxes import DEFAULT_CROP_SCALE
from a3d_core.eval.instances import InstanceTable, collect_instances, visible_mask_table
from a3d_core.eval.intervals import Interval, bootstrap_difference, bootstrap_mean
from a3d_core.eval.shape3d import to_data_frame, voxel_iou, voxelize
from a3d_core.eval.viewpoint_diagnostics import Renderer, align_azimuths, novel_view_ious, viewpoint_errors
from a3d_core.experiments.viewpoints.specs import ModelSpec
from a3d_core.experiments.viewpoints.training import code_commit, open_split
from a3d_core.geometry import Viewpoint, ico_sphere_template
from a3d_core.io.atomic import atomic_write_bytes, atomic_write_json
from a3d_core.model.asm import AmodalShapeModel

TABLE_FIELDS = [f.name for f in dataclasses.fields(InstanceTable)]


def save_table(path: Path, table: InstanceTable) -> None:
    """Write ``table`` to ``path`` (a compressed ``.npz``, atomically)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: value for name in TABLE_FIELDS if (value := getattr(table, name)) is not None})
    atomic_write_bytes(path, buffer.getvalue())


def load_table(path: Path) -> InstanceTable:
    """The table :func:`save_table` wrote."""
    with np.load(path, allow_pickle=False) as archive:
        return InstanceTable(**{name: archive[name] for name in archive.files})


TABLES_PROVENANCE = "provenance.json"


def evaluate_model(
    spec: ModelSpec,
    model: AmodalShapeModel | None,
    data: Path,
    splits: Sequence[str],
    folder: Path,
    device: torch.device,
) -> dict[str, InstanceTable]:
    """``split -> InstanceTable`` of ``model`` on ``splits`` (cached under ``folder``).

    ``folder/provenance.json`` records the kind and stage-2 settings the tables came from and the
    code's commit; cached tables of other settings are computed again (tables cached before it was
    kept are reused).
    """
    folder.mkdir(parents=True, exist_ok=True)
    provenance = {"kind": spec.kind, "stage2": None if model is None else model.settings.to_dict()}
    provenance_path = folder / TABLES_PROVENANCE
    if provenance_path.is_file():
        recorded = json.loads(provenance_path.read_text())
        if {key: recorded.get(key) for key in provenance} != provenance:
            for stale in folder.glob("*.npz"):
                stale.unlink()
    if not any(folder.glob("*.npz")):  # fresh tables: recorded; tables from before the record stay unrecorded
        atomic_write_json(provenance_path, {**provenance, "commit": code_commit()}, indent=2)
    tables = {}
    for split in splits:
        path = folder / f"{split}.npz"
        if not path.is_file():
            dataset = open_split(data, split)
            table = (
                visible_mask_table(dataset)
                if model is None
                else collect_instances(model, dataset, device=device, keep_meshes=spec.is_3d and split == "test")
            )
            save_table(path, table)
        tables[split] = load_table(path)
    return tables


def _percent(interval: Interval) -> dict[str, float]:
    return {key: 100 * value if key != "level" else value for key, value in interval.as_dict().items()}


def split_metrics(table: InstanceTable, category_names: Sequence[str], resamples: int, seed: int) -> dict[str, Any]:
    """mIoU and hidden-part mIoU with intervals, and per-category mIoU with intervals (all %)."""
    per_category = {}
    for index, name in enumerate(category_names):
        mine = table.category == index
        if mine.any():
            per_category[name] = _percent(
                bootstrap_mean(table.iou[mine], table.category[mine], table.object_index[mine], resamples, seed=seed)
            )
    return {
        "instances": len(table),
        "objects": int(len(np.unique(table.object_index))),
        "miou": _percent(bootstrap_mean(table.iou, table.category, table.object_index, resamples, seed=seed)),
        "hidden_miou": _percent(
            bootstrap_mean(table.hidden_iou, table.category, table.object_index, resamples, seed=seed)
        ),
        "per_category": per_category,
    }


def paired_difference(
    first: InstanceTable, second: InstanceTable, field_name: str, resamples: int, seed: int
) -> dict[str, float]:
    if not (np.array_equal(first.object_index, second.object_index) and np.array_equal(first.view_id, second.view_id)):
        raise ValueError("paired differences need the same instances in the same order")
    return _percent(
        bootstrap_difference(
            getattr(first, field_name),
            getattr(second, field_name),
            first.category,
            first.object_index,
            resamples,
            seed=seed,
        )
    )


def novel_view_targets(data: Path, splits: Sequence[str]) -> dict[tuple[int, float, int], torch.Tensor]:
    """``(object index, elevation, view id) -> amodal mask (S, S)`` of every view in ``splits``, framed
    as the models see it: the targets of the novel-view IoU."""
    targets = {}
    for split in splits:
        dataset = open_split(data, split)
        for i in range(len(dataset)):
            key = (int(dataset.object_index[i]), float(dataset.elevation[i]), int(dataset.view_id[i]))
            targets[key] = dataset[i]["amodal"][0]
    return targets


def input_masks(table: InstanceTable, targets: dict[tuple[int, float, int], torch.Tensor]) -> torch.Tensor:
    """``(N, S, S)``: the amodal mask of each view in ``table``, from the :func:`novel_view_targets`
    lookup, framed as the novel-view targets are (the "reuse the input view's mask" reference)."""
    keys = zip(table.object_index.tolist(), table.elevation.tolist(), table.view_id.tolist())
    return torch.stack([targets[key] for key in keys])


MESHES_PER_OBJECT = 4
"""Reconstructions of each test object judged in 3D (from evenly spread `test` views)."""


def true_meshes(manifest: dict[str, Any]) -> dict[int, Any] | None:
    """``object index -> TriangleMesh`` of a built-in library dataset (``None`` for other sources)."""
    from a3d_core.data.shapes import CATEGORIES, generate_shape

    if manifest.get("source") != "builtin":
        return None
    meshes = {}
    for entry in manifest["objects"]:
        number = int(str(entry["source_id"]).rsplit("/", 1)[-1])
        meshes[int(entry["index"])] = (
            entry["category"],
            (int(manifest["seed"]), CATEGORIES.index(entry["category"]), number),
        )
    return {index: generate_shape(category, seed) for index, (category, seed) in meshes.items()}


def reference_sphere(model: AmodalShapeModel) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(V, 3)`` and faces ``(F, 3)`` of the paper's ico-sphere at ``model``'s template
    level: the untrained template every model's voxel IoU is set beside."""
    vertices, faces = ico_sphere_template(model.settings.template_level, model.settings.template_radius)
    return vertices.numpy(), faces.numpy()


def mesh_ious(
    table: InstanceTable,
    faces: np.ndarray,
    alignments: dict,
    truths: dict[int, Any],
    template: tuple,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Voxel IoU (%) of the reconstructions in ``table`` and of the template sphere with the true meshes."""
    picks = []
    for obj in np.unique(table.object_index):
        rows = np.flatnonzero(table.object_index == obj)
        picks += rows[np.linspace(0, len(rows) - 1, min(MESHES_PER_OBJECT, len(rows))).round().astype(int)].tolist()
    picks = np.unique(picks)
    true_grids = {
        obj: voxelize(truths[int(obj)].vertices, truths[int(obj)].faces) for obj in np.unique(table.object_index[picks])
    }
    sphere = voxelize(*template)
    mesh, blob = [], []
    for i in picks:
        vertices = to_data_frame(table.vertices[i], alignments[int(table.category[i])])
        truth = true_grids[table.object_index[i]]
        mesh.append(voxel_iou(voxelize(vertices, faces), truth))
        blob.append(voxel_iou(sphere, truth))
    categories, objects = table.category[picks], table.object_index[picks]
    names = {}
    for category in np.unique(categories):
        mine = categories == category
        names[int(category)] = {
            "mesh": 100 * float(np.mean(np.asarray(mesh)[mine])),
            "sphere": 100 * float(np.mean(np.asarray(blob)[mine])),
        }
    return {
        "meshes": int(len(picks)),
        "mesh": _percent(bootstrap_mean(np.asarray(mesh), categories, objects, resamples, seed=seed)),
        "sphere": _percent(bootstrap_mean(np.asarray(blob), categories, objects, resamples, seed=seed)),
        "per_category": names,
    }


def cpu_renderer(model: AmodalShapeModel) -> Renderer:
    """``model``'s renderer taking CPU meshes ``(B, V, 3)`` and cameras (B) and giving CPU
    silhouettes ``(B, S, S)``, wherever the model is: the inputs go to its device, not the model
    to the CPU."""
    device = next(model.parameters()).device

    def render(vertices: torch.Tensor, viewpoint: Viewpoint) -> torch.Tensor:
        return model.mask_branch.render(vertices.to(device), viewpoint.to(device)).cpu()

    return render


def diagnostics_3d(
    model: AmodalShapeModel,
    tables: dict[str, InstanceTable],
    test_splits: Sequence[str],
    targets: dict,
    resamples: int,
    seed: int,
    truths: dict[int, Any] | None = None,
) -> dict[str, Any]:
    """Viewpoint errors (aligned on val) per test split and novel-view IoU from the ``test`` inputs.

    A category val lacks takes the alignment fitted on all of val: nothing is fitted on a test split.
    The model stays on its device and in its train or eval mode (:func:`cpu_renderer`).
    """
    val = tables["val"]
    alignments = viewpoint_errors(val).alignments
    pooled = align_azimuths(val.azimuth, val.predicted_azimuth)
    for category in np.unique(np.concatenate([tables[split].category for split in test_splits])):
        alignments.setdefault(int(category), pooled)
    errors = {split: viewpoint_errors(tables[split], alignments) for split in test_splits}
    test = tables["test"]
    inputs = input_masks(test, targets)
    novel = {}
    for result in novel_view_ious(test, inputs, targets, cpu_renderer(model), alignments, DEFAULT_CROP_SCALE):
        if not len(result.mesh_iou):
            continue
        novel[result.step.label] = {
            "pairs": int(len(result.mesh_iou)),
            "mesh": _percent(
                bootstrap_mean(result.mesh_iou, result.category, result.object_index, resamples, seed=seed)
            ),
            "reuse_input_mask": _percent(
                bootstrap_mean(result.reuse_iou, result.category, result.object_index, resamples, seed=seed)
            ),
            "difference": _percent(
                bootstrap_difference(
                    result.mesh_iou, result.reuse_iou, result.category, result.object_index, resamples, seed=seed
                )
            ),
        }
    shapes = None
    if truths is not None:
        shapes = mesh_ious(
            test, model.mask_branch.faces.cpu().numpy(), alignments, truths, reference_sphere(model), resamples, seed
        )
    return {
        "shapes_3d": shapes,
        "alignments": {int(c): dataclasses.asdict(a) for c, a in alignments.items()},
        "viewpoint_errors": {split: e.summary() for split, e in errors.items()},
        "angle_errors": {split: e.angle.tolist() for split, e in errors.items()},
        "novel_view": novel,
    }
