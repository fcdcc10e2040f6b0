"""The viewpoint benchmark's evaluation: per-instance tables, mIoU with intervals, paired
differences, and the 3D diagnostics of the A3D models.

Each model's :class:`~a3d_core.eval.instances.InstanceTable` of every split is cached under its
run folder (``tables/<split>.npz``), one per training seed. Metrics: mIoU per category and its
mean over categories (averaged over seeds), mIoU of the hidden part, mIoU by occlusion band
(:data:`OCCLUSION_BANDS`), each seed's mIoU, 95% bootstrap intervals over test objects and
seeds, differences paired by instance and seed index (:mod:`a3d_core.eval.intervals`). 3D
diagnostics (:func:`diagnostics_3d`): viewpoint error (raw and modulo 180 degrees) after the
per-category alignment fitted on ``val``, novel-view IoU against reusing the input view's mask,
and the meshes' voxel IoU with the true meshes (:mod:`a3d_core.eval.shape3d`) beside the
template sphere's. They leave the model where it is, on its device and in its mode.
"""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from a3d_core.boxes import DEFAULT_CROP_SCALE
from a3d_core.data.shapenet import load_split_arrays
from a3d_core.eval.instances import InstanceTable, collect_instances, visible_mask_table
from a3d_core.eval.intervals import Interval, bootstrap_difference, bootstrap_mean, seed_mean
from a3d_core.eval.shape3d import to_data_frame, voxel_iou, voxelize
from a3d_core.eval.viewpoint_diagnostics import (
    Renderer,
    ViewpointErrors,
    align_azimuths,
    novel_view_ious,
    viewpoint_errors,
)
from a3d_core.experiments.viewpoints.provenance import provenance, read_provenance, stale_reason
from a3d_core.experiments.viewpoints.specs import ModelSpec
from a3d_core.experiments.viewpoints.training import model_inputs, open_split
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
    trained_by: dict[str, Any] | None = None,
) -> dict[str, InstanceTable]:
    """``split -> InstanceTable`` of ``model`` on ``splits`` (cached under ``folder``).

    ``folder/provenance.json`` records the code, the kind and stage-2 settings the tables came
    from and ``trained_by`` (the trained model's own provenance); cached tables that record
    another, or none, are computed again.
    """
    folder.mkdir(parents=True, exist_ok=True)
    current = provenance(
        {
            "kind": spec.kind,
            "targets": spec.targets,
            "stage2": None if model is None else model.settings.to_dict(),
            "trained_by": trained_by,
        }
    )
    provenance_path = folder / TABLES_PROVENANCE
    if stale_reason(read_provenance(provenance_path), current) is not None:
        for stale in folder.glob("*.npz"):
            stale.unlink()
        atomic_write_json(provenance_path, {"provenance": current}, indent=2)
    tables = {}
    for split in splits:
        path = folder / f"{split}.npz"
        if not path.is_file():
            dataset = model_inputs(spec, data, split)
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


OCCLUSION_BANDS = (("< 30%", 0.0, 0.3), ("30-50%", 0.3, 0.5), ("> 50%", 0.5, math.inf))
"""``(label, low, high)``: the share of the amodal mask hidden, ``low <= rate < high``."""


def occlusion_rates(data: Path, split: str) -> np.ndarray:
    """``(N,)``: the hidden share of each instance of ``split``, in the tables' order."""
    return load_split_arrays(data, split, ["occlusion_rate"])[1]["occlusion_rate"].astype(np.float64)


def stacked(tables: Sequence[InstanceTable], field_name: str) -> np.ndarray:
    """``(S, N)``: ``field_name`` of each seed's table, checked to hold the same instances in order."""
    first = tables[0]
    for table in tables[1:]:
        if not (
            np.array_equal(table.object_index, first.object_index) and np.array_equal(table.view_id, first.view_id)
        ):
            raise ValueError("the seeds' tables hold other instances or another order")
    return np.stack([getattr(table, field_name) for table in tables])


def split_metrics(
    tables: Sequence[InstanceTable],
    category_names: Sequence[str],
    resamples: int,
    seed: int,
    occlusion: np.ndarray | None = None,
) -> dict[str, Any]:
    """mIoU and hidden-part mIoU with intervals over objects and seeds, each seed's mIoU,
    per-category mIoU and (given each instance's hidden share ``occlusion`` ``(N,)``) mIoU per
    :data:`OCCLUSION_BANDS` band, all in %, of one model's ``tables`` (one per seed)."""
    table = tables[0]
    iou = stacked(tables, "iou")

    def interval(values: np.ndarray, rows: np.ndarray) -> dict[str, float]:
        return _percent(
            bootstrap_mean(values[:, rows], table.category[rows], table.object_index[rows], resamples, seed=seed)
        )

    every = np.ones(len(table), dtype=bool)
    per_category = {
        name: interval(iou, table.category == index)
        for index, name in enumerate(category_names)
        if (table.category == index).any()
    }
    bands = {}
    if occlusion is not None:
        if len(occlusion) != len(table):
            raise ValueError(f"{len(occlusion)} occlusion rates for a table of {len(table)} instances")
        for label, low, high in OCCLUSION_BANDS:
            rows = (occlusion >= low) & (occlusion < high)
            bands[label] = {"instances": int(rows.sum()), "miou": interval(iou, rows) if rows.any() else None}
    return {
        "instances": len(table),
        "objects": int(len(np.unique(table.object_index))),
        "seeds": len(tables),
        "miou": interval(iou, every),
        "miou_per_seed": [100 * seed_mean(row[None], table.category) for row in iou],
        "hidden_miou": interval(stacked(tables, "hidden_iou"), every),
        "per_category": per_category,
        "occlusion_bands": bands,
    }


def paired_difference(
    first: Sequence[InstanceTable], second: Sequence[InstanceTable], field_name: str, resamples: int, seed: int
) -> dict[str, float]:
    """``first`` minus ``second`` (each one table per seed) with its interval, paired by instance
    and by seed index over the seeds both have."""
    shared = min(len(first), len(second))
    first_values, second_values = stacked(first[:shared], field_name), stacked(second[:shared], field_name)
    table, other = first[0], second[0]
    if not (np.array_equal(table.object_index, other.object_index) and np.array_equal(table.view_id, other.view_id)):
        raise ValueError("paired differences need the same instances in the same order")
    return {
        **_percent(
            bootstrap_difference(first_values, second_values, table.category, table.object_index, resamples, seed=seed)
        ),
        "seeds": shared,
    }


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
    tables: Sequence[InstanceTable],
    faces: np.ndarray,
    alignments: Sequence[dict],
    truths: dict[int, Any],
    template: tuple,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Voxel IoU (%) of the reconstructions in ``tables`` (one per training seed, the same
    instances; ``alignments`` one per seed) and of the template sphere with the true meshes, with
    intervals over objects and seeds."""
    table = tables[0]
    picks = []
    for obj in np.unique(table.object_index):
        rows = np.flatnonzero(table.object_index == obj)
        picks += rows[np.linspace(0, len(rows) - 1, min(MESHES_PER_OBJECT, len(rows))).round().astype(int)].tolist()
    picks = np.unique(picks)
    true_grids = {
        obj: voxelize(truths[int(obj)].vertices, truths[int(obj)].faces) for obj in np.unique(table.object_index[picks])
    }
    sphere = voxelize(*template)
    blob = np.array([voxel_iou(sphere, true_grids[table.object_index[i]]) for i in picks])
    mesh = np.array(
        [
            [
                voxel_iou(
                    voxelize(to_data_frame(run.vertices[i], aligned[int(run.category[i])]), faces),
                    true_grids[table.object_index[i]],
                )
                for i in picks
            ]
            for run, aligned in zip(tables, alignments)
        ]
    )
    categories, objects = table.category[picks], table.object_index[picks]
    names = {
        int(category): {
            "mesh": 100 * float(mesh[:, categories == category].mean()),
            "sphere": 100 * float(blob[categories == category].mean()),
        }
        for category in np.unique(categories)
    }
    return {
        "meshes": int(len(picks)),
        "seeds": len(tables),
        "mesh": _percent(bootstrap_mean(mesh, categories, objects, resamples, seed=seed)),
        "sphere": _percent(bootstrap_mean(blob, categories, objects, resamples, seed=seed)),
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


def val_alignments(tables: dict[str, InstanceTable], test_splits: Sequence[str]) -> dict:
    """Category -> :class:`AzimuthAlignment` fitted on ``tables["val"]``; a category val lacks takes
    the alignment fitted on all of val: nothing is fitted on a test split."""
    val = tables["val"]
    alignments = viewpoint_errors(val).alignments
    pooled = align_azimuths(val.azimuth, val.predicted_azimuth)
    for category in np.unique(np.concatenate([tables[split].category for split in test_splits])):
        alignments.setdefault(int(category), pooled)
    return alignments


def diagnostics_3d(
    models: Sequence[AmodalShapeModel],
    tables: Sequence[dict[str, InstanceTable]],
    test_splits: Sequence[str],
    targets: dict,
    resamples: int,
    seed: int,
    truths: dict[int, Any] | None = None,
) -> dict[str, Any]:
    """Viewpoint errors (aligned on val) per test split, novel-view IoU from the ``test`` inputs and
    voxel IoU, of one model trained with several seeds: ``models`` and their ``tables`` one per
    seed. Each seed is aligned on its own val; the errors are pooled over seeds, the IoUs have
    intervals over objects and seeds.

    Each model stays on its device and in its train or eval mode (:func:`cpu_renderer`).
    """
    alignments = [val_alignments(run, test_splits) for run in tables]
    errors = {
        split: [viewpoint_errors(run[split], aligned) for run, aligned in zip(tables, alignments)]
        for split in test_splits
    }
    test = tables[0]["test"]
    inputs = input_masks(test, targets)
    by_seed = [
        novel_view_ious(run["test"], inputs, targets, cpu_renderer(model), aligned, DEFAULT_CROP_SCALE)
        for model, run, aligned in zip(models, tables, alignments)
    ]
    novel = {}
    for results in zip(*by_seed):
        first = results[0]
        if not len(first.mesh_iou):
            continue
        mesh = np.stack([result.mesh_iou for result in results])
        reuse = np.broadcast_to(first.reuse_iou, mesh.shape)
        novel[first.step.label] = {
            "pairs": int(len(first.mesh_iou)),
            "mesh": _percent(bootstrap_mean(mesh, first.category, first.object_index, resamples, seed=seed)),
            "reuse_input_mask": _percent(
                bootstrap_mean(first.reuse_iou, first.category, first.object_index, resamples, seed=seed)
            ),
            "difference": _percent(
                bootstrap_difference(mesh, reuse, first.category, first.object_index, resamples, seed=seed)
            ),
        }
    shapes = None
    if truths is not None:
        faces = models[0].mask_branch.faces.cpu().numpy()
        shapes = mesh_ious(
            [run["test"] for run in tables], faces, alignments, truths, reference_sphere(models[0]), resamples, seed
        )
    pooled = {split: _pooled(by_split) for split, by_split in errors.items()}
    return {
        "seeds": len(models),
        "shapes_3d": shapes,
        "alignments": [{int(c): dataclasses.asdict(a) for c, a in aligned.items()} for aligned in alignments],
        "viewpoint_errors": {split: e.summary() for split, e in pooled.items()},
        "angle_errors": {split: e.angle.tolist() for split, e in pooled.items()},
        "novel_view": novel,
    }


def _pooled(errors: Sequence[ViewpointErrors]) -> ViewpointErrors:
    """The seeds' errors as one set of instances (the first seed's alignments)."""
    return ViewpointErrors(
        azimuth=np.concatenate([e.azimuth for e in errors]),
        elevation=np.concatenate([e.elevation for e in errors]),
        angle=np.concatenate([e.angle for e in errors]),
        alignments=errors[0].alignments,
    )
