"""The modal study's evaluation: per-instance scores on each test set, mIoU with intervals over
test images and seeds, paired differences.

Each model's scores on each test set (:data:`~a3d_core.experiments.modal.specs.TEST_SETS`) are
cached under its run folder (``tables/<test set>.npz``), one per training seed, with the
provenance of the code and of the trained model they came from. A score is the IoU of the
completed mask (threshold 0.5) and of its hidden part (:func:`~a3d_core.eval.instances.hidden_part_iou`,
NaN where nothing is hidden), with the unit the intervals resample: the test IMAGE of a real or
scene instance, the 3D object of a library view. On ``real`` and ``library`` the model completes
the framed mask-only views (:func:`~a3d_core.experiments.modal.training.framed_views`); on
``scenes`` the ``deocclusion`` completer (:class:`~a3d_core.pipelines.completers.DeocclusionCompleter`)
completes each ground-truth instance in its image from its amodal box, its visible mask and the
union of the other instances' visible masks (the completion protocol, C2F-Seg's setting).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from a3d_core.data.detection import AmodalDetectionDataset
from a3d_core.data.shapenet import read_shard_manifest
from a3d_core.eval.instances import CompletedInstances, collect_instances, visible_mask_table
from a3d_core.eval.intervals import Interval, bootstrap_difference, bootstrap_mean, seed_mean
from a3d_core.experiments.modal.specs import TEST_SETS, ModelSpec
from a3d_core.experiments.modal.training import StudyData, framed_views
from a3d_core.experiments.viewpoints.provenance import provenance, read_provenance, stale_reason
from a3d_core.io.atomic import atomic_write_bytes, atomic_write_json
from a3d_core.pipelines.completers import Completer, VisibleCompleter, load_deocclusion_completer
from a3d_core.pipelines.evaluate import complete_ground_truth

SCENES_SPLIT = "val"
"""The scenes' split scored (``a3d prepare scenes`` writes train and val; no model learns from either)."""


@dataclass
class Scores:
    """One model's scores on one test set, N instances in a fixed order: ``iou``, ``hidden_iou``
    ``(N,)`` float64 (NaN: nothing hidden) and ``unit`` ``(N,)`` int64 (the image or object)."""

    iou: np.ndarray
    hidden_iou: np.ndarray
    unit: np.ndarray

    def save(self, path: Path) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{item.name: getattr(self, item.name) for item in fields(self)})
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> "Scores":
        with np.load(path, allow_pickle=False) as archive:
            return cls(**{item.name: archive[item.name] for item in fields(cls)})


def view_units(data: StudyData, test_set: str) -> np.ndarray:
    """``(N,)``: the image id of each ``real`` test instance, the object of each ``library`` test view."""
    views = framed_views(data, test_set, "test")
    if test_set == "library":
        return np.asarray(views.object_index, np.int64)
    image_of = {entry["index"]: entry["image_id"] for entry in read_shard_manifest(data.real)["objects"]}
    return np.array([image_of[int(index)] for index in views.object_index], np.int64)


def score_views(model: torch.nn.Module | None, data: StudyData, test_set: str, device: torch.device) -> Scores:
    """``model`` (``None``: the visible mask) on the test views of ``real`` or ``library``."""
    views = framed_views(data, test_set, "test")
    table = visible_mask_table(views) if model is None else collect_instances(model, views, device, keep_meshes=False)
    return Scores(table.iou, table.hidden_iou, view_units(data, test_set))


def score_scenes(completer: Completer, scenes: Path, split: str = SCENES_SPLIT) -> Scores:
    """``completer`` on every ground-truth instance of the scenes' ``split``, in its image."""
    instances = CompletedInstances()
    complete_ground_truth(completer, AmodalDetectionDataset(scenes, split), on_image=instances)
    return Scores(*instances.arrays())


def evaluate_model(
    spec: ModelSpec, record: dict[str, Any] | None, data: StudyData, folder: Path, device: torch.device
) -> dict[str, Scores]:
    """``test set -> Scores`` of one run of ``spec`` (``record``: its ``model.json``; ``None`` for
    the visible mask), cached under ``folder`` with ``folder/provenance.json`` (the code, the
    trained model's provenance and the data's recipes); cached scores of other code, another model
    or other test data are computed again."""
    folder.mkdir(parents=True, exist_ok=True)
    trained_by = None if record is None else record["provenance"]
    current = provenance({"model": spec.name, "trained_by": trained_by, "data": data.recipes})
    provenance_path = folder / "provenance.json"
    if stale_reason(read_provenance(provenance_path), current) is not None:
        for stale in folder.glob("*.npz"):
            stale.unlink()
        atomic_write_json(provenance_path, {"provenance": current}, indent=2)
    missing = [test_set for test_set in TEST_SETS if not (folder / f"{test_set}.npz").is_file()]
    if missing:
        completer = (
            VisibleCompleter() if record is None else load_deocclusion_completer(record["checkpoint"], str(device))
        )
        for test_set in missing:
            if test_set == "scenes":
                scores = score_scenes(completer, data.scenes)
            else:
                scores = score_views(None if record is None else completer.stage2, data, test_set, device)
            scores.save(folder / f"{test_set}.npz")
    return {test_set: Scores.load(folder / f"{test_set}.npz") for test_set in TEST_SETS}


def _percent(interval: Interval) -> dict[str, float]:
    return {key: 100 * value if key != "level" else value for key, value in interval.as_dict().items()}


def stacked(runs: Sequence[Scores], name: str) -> np.ndarray:
    """``(S, N)``: ``name`` of each seed's scores, checked to hold the same instances in order."""
    for run in runs[1:]:
        if not np.array_equal(run.unit, runs[0].unit):
            raise ValueError("the seeds' scores hold other instances or another order")
    return np.stack([getattr(run, name) for run in runs])


METRICS = (("miou", "iou"), ("hidden_miou", "hidden_iou"))
"""``(results key, Scores field)``: mIoU, and mIoU_occ over the instances with a hidden part."""


def set_metrics(runs: Sequence[Scores], resamples: int, seed: int) -> dict[str, Any]:
    """mIoU and mIoU_occ in % with 95% intervals over the test units and seeds, and each seed's
    mIoU, of one model's ``runs`` (one per seed) on one test set."""
    first = runs[0]
    categories = np.zeros(len(first.unit), np.int64)
    iou = stacked(runs, "iou")
    results: dict[str, Any] = {
        "instances": len(first.unit),
        "units": int(len(np.unique(first.unit))),
        "seeds": len(runs),
        "miou_per_seed": [100 * seed_mean(row[None], categories) for row in iou],
    }
    for key, name in METRICS:
        values = stacked(runs, name)
        results[key] = _percent(bootstrap_mean(values, categories, first.unit, resamples, seed=seed))
    return results


def paired_difference(
    first: Sequence[Scores], second: Sequence[Scores], name: str, resamples: int, seed: int
) -> dict[str, float]:
    """``first`` minus ``second`` (one Scores per seed) on ``name``, with its interval, paired by
    instance and by seed index over the seeds both have."""
    shared = min(len(first), len(second))
    if not np.array_equal(first[0].unit, second[0].unit):
        raise ValueError("paired differences need the same instances in the same order")
    categories = np.zeros(len(first[0].unit), np.int64)
    interval = bootstrap_difference(
        stacked(first[:shared], name), stacked(second[:shared], name), categories, first[0].unit, resamples, seed=seed
    )
    return {**_percent(interval), "seeds": shared}
