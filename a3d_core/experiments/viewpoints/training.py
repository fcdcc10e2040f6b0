"""The viewpoint benchmark's data and training: the scale's dataset, each model trained (or built
and fitted) by the same code, resumable.

Every trained model is pretrained by :func:`a3d_core.train.pretrain.pretrain` with the same flip
augmentation, framing, optimiser and number of training instances (a cross-view step sees two
views of each object: both count), its checkpoint chosen on ``val`` mIoU. Its record
(``model.json``) keeps the stage-2 settings it trained with and the code's commit; a rerun reuses
a finished model only when the settings agree (a record from before they were kept is reused as
it is).
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from a3d_core.boxes import DEFAULT_CROP_SCALE
from a3d_core.data.framing import FramedViews
from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
from a3d_core.data.shapenet import ShapeNetAmodalDataset, read_shard_manifest
from a3d_core.errors import InputError
from a3d_core.experiments.viewpoints.specs import BenchmarkScale, ModelSpec
from a3d_core.io.atomic import atomic_write_json
from a3d_core.model.asm import AmodalShapeModel, ASMSettings, build_stage2, load_stage2_from_checkpoint
from a3d_core.train.checkpoint import describe_config_difference
from a3d_core.train.loop import TrainSettings
from a3d_core.train.pretrain import PretrainSettings, fit_to_training_masks, pretrain, stage2_settings

Log = Callable[[str], None]


def prepare_data(scale: BenchmarkScale, root: Path, seed: int, log: Log) -> Path:
    """The scale's dataset under ``root`` (prepared once; reused when its manifest matches)."""
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
        seed=seed,
        min_amodal_pixels=4 if scale.image_size < 32 else 10,
    )
    if root.exists():
        manifest = read_shard_manifest(root)
        if (
            manifest.get("viewpoint_protocol") != config.protocol.as_dict()
            or manifest.get("image_size") != scale.image_size
        ):
            raise InputError(f"{root}: a dataset of another protocol is in the way; remove it or use another --out")
        log(f"data: reusing {root}")
        return root
    log(
        f"data: preparing {root} ({scale.objects_per_category} objects per category, "
        f"{len(config.protocol.cameras)} cameras)"
    )
    started = time.perf_counter()
    prepare_shapenet(config)
    log(f"data: prepared in {time.perf_counter() - started:.0f} s")
    return root


def open_split(root: Path, split: str) -> FramedViews:
    """A split as every model sees it: framed like the two-stage crops (``a3d pretrain``'s default)."""
    return FramedViews(ShapeNetAmodalDataset(root, split), DEFAULT_CROP_SCALE)


def training_steps(spec: ModelSpec, scale: BenchmarkScale) -> int:
    """Steps that make ``spec`` see ``scale.instances`` training instances."""
    per_step = scale.batch_size * (2 if spec.cross_view else 1)
    return max(1, math.ceil(scale.instances / per_step))


def pretrain_settings(
    spec: ModelSpec, scale: BenchmarkScale, data: Path, run: Path, seed: int, device: str
) -> PretrainSettings:
    """How ``spec`` is pretrained at ``scale`` into ``run`` (resuming an interrupted run)."""
    steps = training_steps(spec, scale)
    train_settings = TrainSettings(
        lr=scale.lr,
        batch_size=scale.batch_size,
        epochs=None,
        steps=steps,
        seed=seed,
        val_every=max(1, steps // scale.validations),
        checkpoint_every=max(1, steps // scale.validations),
        progress=False,
        tensorboard=False,
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


def train_model(
    spec: ModelSpec, scale: BenchmarkScale, data: Path, run: Path, seed: int, device: str, log: Log
) -> dict[str, Any]:
    """Train ``spec`` (resuming an interrupted run) and return its record (``model.json``).

    Raises:
        InputError: ``run`` holds a finished model trained with other stage-2 settings.
    """
    settings = pretrain_settings(spec, scale, data, run, seed, device)
    stage2 = stage2_settings(settings, int(read_shard_manifest(data)["image_size"])).to_dict()
    record_path = run / "model.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        recorded = record.get("stage2")
        if recorded is not None and recorded != stage2:
            raise InputError(
                f"{run}: {spec.name} was trained with other stage-2 settings "
                f"({describe_config_difference(recorded, stage2)}); remove the folder to retrain it"
            )
        return record
    steps = settings.train.steps
    log(f"train {spec.name}: {steps} steps of {scale.batch_size}{' x 2 views' if spec.cross_view else ''}")
    result = pretrain(settings)
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
        "commit": code_commit(),
    }
    atomic_write_json(record_path, record, indent=2)
    log(
        f"train {spec.name}: done in {record['seconds']:.0f} s, "
        f"best val mIoU {100 * (record['val_miou'] or 0):.1f} at step {record['best_step']}"
    )
    return record


def code_commit() -> str | None:
    """The git commit of the code that runs (``None`` outside a git checkout)."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None


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
