"""The viewpoint benchmark's data and training: the scale's dataset, each model trained (or built
and fitted) by the same code, resumable.

Every trained model is pretrained by :func:`a3d_core.train.pretrain.pretrain` with the same flip
augmentation, framing, optimiser and number of training instances (a cross-view step sees two
views of each object: both count), its checkpoint chosen on ``val`` mIoU; a model is trained
once per seed it has (:func:`model_seeds`), each in its own folder (:func:`run_folder`). Its
record (``model.json``) and the dataset's (``data.json`` beside it) keep their provenance
(:mod:`~a3d_core.experiments.viewpoints.provenance`): the code and the full settings (stage-2,
training, scale, seed); a rerun reuses only what matches, and retrains (re-prepares) or, under
the ``refuse`` policy, refuses what is stale, an interrupted run included.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

from a3d_core.boxes import DEFAULT_CROP_SCALE
from a3d_core.data.framing import FramedViews
from a3d_core.data.modal_views import DeocclusionPairs, MaskOnlyViews
from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
from a3d_core.data.shapenet import ShapeNetAmodalDataset, read_shard_manifest
from a3d_core.experiments.viewpoints.provenance import (
    RUN_RECORD,
    RUN_STARTED,
    check_stale,
    finished_run,
    provenance,
    read_provenance,
    stale_reason,
)
from a3d_core.experiments.viewpoints.specs import BenchmarkScale, ModelSpec
from a3d_core.io.atomic import atomic_write_json
from a3d_core.model.asm import AmodalShapeModel, ASMSettings, build_stage2, load_stage2_from_checkpoint
from a3d_core.train.loop import TrainSettings
from a3d_core.train.pretrain import (
    PretrainComponents,
    PretrainSettings,
    fit_to_training_masks,
    pretrain,
    shapenet_components,
    stage2_settings,
)

Log = Callable[[str], None]


def prepare_data(scale: BenchmarkScale, root: Path, seed: int, log: Log, stale: str = "redo") -> Path:
    """The scale's dataset under ``root``, prepared once and reused while its record
    (``<root>.json``) matches the code and the preparation settings; a stale one is prepared
    again (or refused, ``stale="refuse"``)."""
    config = PrepareShapeNetConfig(
        out=root,
        categories=scale.categories,
        objects_per_category=scale.objects_per_category,
        views=scale.views,
        image_size=scale.image_size,
        split_fractions=scale.split_fractions,
        elevations=scale.elevations,
        holdout_views=scale.holdout_views,
        holdout_elevations=scale.holdout_elevations,
        holdout_pairs=scale.holdout_pairs,
        farview=scale.farview,
        seed=seed,
        min_amodal_pixels=4 if scale.image_size < 32 else 10,
    )
    record_path = root.with_name(f"{root.name}.json")
    current = provenance(
        {
            "categories": scale.categories,
            "objects_per_category": scale.objects_per_category,
            "split_fractions": scale.split_fractions,
            "image_size": scale.image_size,
            "protocol": config.protocol.as_dict(),
            "seed": seed,
            "min_amodal_pixels": config.min_amodal_pixels,
        }
    )
    if root.exists():
        if not check_stale("the dataset", root, stale_reason(read_provenance(record_path), current), stale):
            log(f"data: reusing {root}")
            return root
        log(f"data: {root} is stale, preparing it again")
        shutil.rmtree(root)
    log(
        f"data: preparing {root} ({scale.objects_per_category} objects per category, "
        f"{len(config.protocol.cameras)} cameras)"
    )
    started = time.perf_counter()
    prepare_shapenet(config)
    atomic_write_json(record_path, {"provenance": current}, indent=2)
    log(f"data: prepared in {time.perf_counter() - started:.0f} s")
    return root


def open_split(root: Path, split: str) -> FramedViews:
    """A split as every model sees it: framed like the two-stage crops (``a3d pretrain``'s default)."""
    return FramedViews(ShapeNetAmodalDataset(root, split), DEFAULT_CROP_SCALE)


def model_inputs(spec: ModelSpec, root: Path, split: str) -> FramedViews:
    """A split as ``spec`` is scored on it: :func:`open_split`, its RGB made of masks for a model
    trained on modal pairs (:class:`~a3d_core.data.modal_views.MaskOnlyViews`)."""
    if spec.targets == "amodal":
        return open_split(root, split)
    return FramedViews(MaskOnlyViews(ShapeNetAmodalDataset(root, split)), DEFAULT_CROP_SCALE)


def training_components(spec: ModelSpec, seed: int) -> PretrainComponents:
    """What ``spec`` is pretrained from: the views as they are, or (``targets="modal"``) the
    Deocclusion pairs of their visible masks, re-drawn each epoch on train, erased in front on val
    (pretraining frames either at the target's box)."""
    components = shapenet_components()
    if spec.targets == "amodal":
        return components

    def open_pairs(root: Path, split: str) -> DeocclusionPairs:
        return DeocclusionPairs(ShapeNetAmodalDataset(root, split), seed=seed, always_front=split != "train")

    return replace(components, open_split=open_pairs)


def training_steps(spec: ModelSpec, scale: BenchmarkScale) -> int:
    """Steps that make ``spec`` see ``scale.instances`` training instances."""
    per_step = scale.batch_size * (2 if spec.cross_view else 1)
    return max(1, math.ceil(scale.instances / per_step))


def pretrain_settings(
    spec: ModelSpec, scale: BenchmarkScale, data: Path, run: Path, seed: int, device: str
) -> PretrainSettings:
    """How ``spec`` is pretrained at ``scale`` into ``run`` (resuming an interrupted run)."""
    train_settings = study_train_settings(
        scale.lr, scale.batch_size, training_steps(spec, scale), seed, scale.validations
    )
    return PretrainSettings(
        data=data,
        out=run,
        stage2_kind=spec.kind,
        stage2=spec.settings(scale),
        train=train_settings,
        cross_view=spec.cross_view,
        framing=DEFAULT_CROP_SCALE,
        flip=True,
        device=device,
        resume=(run / "last.pt").is_file(),
        val_instances=scale.val_instances,
        evaluate_tests=False,
    )


def study_train_settings(lr: float, batch_size: int, steps: int, seed: int, validations: int) -> TrainSettings:
    """A study's training loop: ``steps`` Adam steps of ``batch_size``, validated and checkpointed
    ``validations`` times, quietly (the study logs its own lines)."""
    every = max(1, steps // validations)
    return TrainSettings(
        lr=lr,
        batch_size=batch_size,
        epochs=None,
        steps=steps,
        seed=seed,
        val_every=every,
        checkpoint_every=every,
        progress=False,
        tensorboard=False,
    )


def model_seeds(spec: ModelSpec, scale: BenchmarkScale, seed: int) -> list[int]:
    """The training seeds of ``spec``: ``scale.seeds`` of them for a headline model, else one;
    seed index ``k`` is ``seed + k`` (the same for every model, so differences pair by index)."""
    return [seed + k for k in range(scale.seeds if spec.headline else 1)]


def run_folder(out: Path, spec: ModelSpec, index: int) -> Path:
    """The folder of ``spec``'s run of seed index ``index`` under the benchmark folder ``out``."""
    return out / "runs" / spec.slug / f"seed-{index}"


EVALUATION_ONLY = ("resamples", "seeds")
"""Scale fields that do not change a trained model (left out of its provenance)."""


def training_provenance(spec: ModelSpec, scale: BenchmarkScale, settings: PretrainSettings, stage2: dict) -> dict:
    """The provenance of ``spec`` trained with ``settings``: the code, and the stage-2 settings,
    training settings, scale and seed."""
    return provenance(
        {
            "model": spec.name,
            "kind": spec.kind,
            "targets": spec.targets,
            "cross_view": spec.cross_view,
            "stage2": stage2,
            "train": asdict(settings.train),
            "pretrain": {"flip": settings.flip, "framing": settings.framing, "val_instances": settings.val_instances},
            "scale": {key: value for key, value in asdict(scale).items() if key not in EVALUATION_ONLY},
            "seed": settings.train.seed,
        }
    )


def train_model(
    spec: ModelSpec,
    scale: BenchmarkScale,
    data: Path,
    run: Path,
    seed: int,
    device: str,
    log: Log,
    stale: str = "redo",
) -> dict[str, Any]:
    """Train ``spec`` with ``seed`` into ``run`` (resuming an interrupted run of the same code and
    settings) and return its record (``model.json``, with its provenance). A finished or
    interrupted run of other code or settings is retrained from scratch (``stale="redo"``).

    Raises:
        InputError: ``run`` holds a stale run and ``stale`` is ``"refuse"``.
    """
    settings = pretrain_settings(spec, scale, data, run, seed, device)
    stage2 = stage2_settings(settings, int(read_shard_manifest(data)["image_size"])).to_dict()
    current = training_provenance(spec, scale, settings, stage2)
    record = finished_run(spec.name, run, current, stale, log)
    if record is not None:
        return record
    settings = replace(settings, resume=(run / "last.pt").is_file())
    atomic_write_json(run / RUN_STARTED, {"provenance": current}, indent=2)
    steps = settings.train.steps
    log(f"train {spec.name}, seed {seed}: {steps} steps of {scale.batch_size}{' x 2 views' if spec.cross_view else ''}")
    result = pretrain(settings, training_components(spec, seed))
    training = result.training
    record = {
        "name": spec.name,
        "kind": spec.kind,
        "steps": training.steps,
        "instances": training.steps * scale.batch_size * (2 if spec.cross_view else 1),
        "seconds": training_seconds(run, scale.batch_size),
        "best_step": training.best_step,
        "val_miou": training.best_metric,
        "checkpoint": str(result.evaluated_checkpoint),
        "cross_view": spec.cross_view,
        "stage2": stage2,
        "seed": seed,
        "commit": current["commit"],
        "provenance": current,
    }
    atomic_write_json(run / RUN_RECORD, record, indent=2)
    log(
        f"train {spec.name}: done in {record['seconds']:.0f} s, "
        f"best val mIoU {100 * (record['val_miou'] or 0):.1f} at step {record['best_step']}"
    )
    return record


def training_seconds(run: Path, batch_size: int) -> float:
    """Seconds spent in optimizer steps, summed from the run's train records (so that a resumed run
    counts its interrupted part too; steps redone after a resume count once)."""
    windows = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("split") == "train" and record.get("instances_per_s"):
            windows[int(record["step"])] = float(record["instances_per_s"])
    seconds, previous = 0.0, 0
    for step in sorted(windows):
        seconds += batch_size * (step - previous) / windows[step]
        previous = step
    return seconds


def load_model(
    spec: ModelSpec, record: dict[str, Any], data: Path, category_names: list[str], scale: BenchmarkScale, seed: int
) -> AmodalShapeModel:
    """The network of ``spec``: its selected checkpoint, or (untrained models) built and fitted here."""
    if spec.trained:
        return load_stage2_from_checkpoint(record["checkpoint"])
    settings: ASMSettings = spec.settings(scale)
    model = build_stage2(spec.kind, category_names, settings)
    fit_to_training_masks(model, open_split(data, "train"), seed)
    return model
