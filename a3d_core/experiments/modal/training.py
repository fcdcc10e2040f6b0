"""The modal study's data and training: the three datasets, each source's views, each model trained
by the same code, resumable.

Data (:func:`prepare_data`), under ``<out>/data``, each with its record ``<name>.json``:

* ``real``: ``a3d prepare modal --class-agnostic`` of the annotation file, split by image;
* ``library``: ``a3d prepare shapenet`` of the built-in shapes, split by object;
* ``scenes``: ``a3d prepare scenes`` (its val split is a test set).

Every trained model is pretrained by :func:`a3d_core.train.pretrain.pretrain` on its source's
views (:func:`source_views`: mask-only, class-agnostic) with the same flips, framing, optimiser
and number of training instances, its checkpoint chosen on val mIoU of its own source. Its
record (``model.json``) keeps its provenance (:mod:`a3d_core.experiments.viewpoints.provenance`);
a rerun reuses what matches and redoes (or, ``stale="refuse"``, refuses) what is stale.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from a3d_core.boxes import DEFAULT_CROP_SCALE
from a3d_core.data.framing import FramedViews
from a3d_core.data.modal_views import ClassAgnosticViews, ConcatViews, MaskOnlyViews
from a3d_core.data.prepare_modal import PrepareModalConfig, prepare_modal
from a3d_core.data.prepare_scenes import ObjectPoolSettings, ScenesRequest, prepare_scenes
from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
from a3d_core.data.shapenet import ShapeNetAmodalDataset
from a3d_core.errors import InputError
from a3d_core.experiments.modal.specs import ModelSpec, StudyScale, stage2_settings
from a3d_core.experiments.viewpoints.provenance import (
    RUN_RECORD,
    RUN_STARTED,
    check_stale,
    finished_run,
    provenance,
    read_provenance,
    stale_reason,
)
from a3d_core.experiments.viewpoints.training import study_train_settings, training_seconds
from a3d_core.io.atomic import atomic_write_json
from a3d_core.model.asm import build_stage2
from a3d_core.train.pretrain import PretrainComponents, PretrainSettings, pretrain, stage2_settings as chosen_stage2

Log = Callable[[str], None]
SPLITS = ("train", "val")
"""The splits a model trains and is chosen on."""


@dataclass(frozen=True)
class StudyData:
    """The study's prepared datasets, and what decided each (:func:`data_recipes`)."""

    real: Path
    library: Path
    scenes: Path
    recipes: dict[str, dict[str, Any]]


def data_recipes(scale: StudyScale, annotations: Path, seed: int) -> dict[str, dict[str, Any]]:
    """What decides each dataset (its record's settings)."""
    return {
        "real": {
            "annotations": str(annotations.resolve()),
            "image_size": scale.image_size,
            "max_images": scale.real_images,
            "split": list(scale.real_split),
            "seed": seed,
        },
        "library": {
            "categories": scale.library_categories,
            "objects_per_category": scale.library_objects_per_category,
            "views": scale.library_views,
            "image_size": scale.image_size,
            "split": list(scale.library_split),
            "seed": seed,
        },
        "scenes": {"categories": scale.scene_categories, "val_images": scale.scenes_images, "seed": seed},
    }


def _make(name: str, recipe: dict[str, Any], root: Path) -> None:
    if name == "real":
        prepare_modal(
            PrepareModalConfig(
                Path(recipe["annotations"]),
                root,
                class_agnostic=True,
                image_size=recipe["image_size"],
                split_fractions=tuple(recipe["split"]),
                seed=recipe["seed"],
                max_images=recipe["max_images"],
            )
        )
    elif name == "library":
        prepare_shapenet(
            PrepareShapeNetConfig(
                out=root,
                categories=None if recipe["categories"] is None else tuple(recipe["categories"]),
                objects_per_category=recipe["objects_per_category"],
                views=recipe["views"],
                image_size=recipe["image_size"],
                split_fractions=tuple(recipe["split"]),
                seed=recipe["seed"],
                min_amodal_pixels=4 if recipe["image_size"] < 32 else 10,
            )
        )
    else:
        extra = {} if recipe["categories"] is None else {"categories": tuple(recipe["categories"])}
        prepare_scenes(
            ScenesRequest(
                train_images=1,  # the scenes' train split is never read
                val_images=recipe["val_images"],
                pool=ObjectPoolSettings(train_objects=1),
                seed=recipe["seed"],
                out_dir=root,
                **extra,
            )
        )


def prepare_data(
    scale: StudyScale, folder: Path, annotations: Path, seed: int, log: Log, stale: str = "redo", prepare: bool = True
) -> StudyData:
    """The study's datasets under ``folder``, each prepared once and reused while its record matches
    the code and its settings; a stale one is prepared again (or refused, ``stale="refuse"``).

    Raises:
        InputError: ``prepare`` is off (a run of some models only, beside another process) and a
            dataset is missing or stale; the annotation file is missing.
    """
    if not annotations.is_file():
        raise InputError(f"{annotations}: annotation file not found (give --annotations FILE.json)")
    recipes = data_recipes(scale, annotations, seed)
    for name, recipe in recipes.items():
        root = folder / name
        record_path = folder / f"{name}.json"
        current = provenance(recipe)
        reason = stale_reason(read_provenance(record_path), current) if root.exists() else "it is missing"
        if reason is None:
            continue
        if not prepare:
            raise InputError(f"{root}: the {name} data is not ready ({reason}); prepare it first (--data-only)")
        if root.exists():
            check_stale(f"the {name} data", root, reason, stale)
            log(f"data: {root} is stale, preparing it again")
            shutil.rmtree(root)
        started = time.perf_counter()
        _make(name, recipe, root)
        atomic_write_json(record_path, {"provenance": current}, indent=2)
        log(f"data: prepared {root} in {time.perf_counter() - started:.0f} s")
    return StudyData(folder / "real", folder / "library", folder / "scenes", recipes)


def source_views(data: StudyData, source: str, split: str) -> ShapeNetAmodalDataset | ConcatViews:
    """A split of ``source`` (``real``, ``library`` or ``both``) as every model reads it, unframed:
    mask-only inputs (:class:`~a3d_core.data.modal_views.MaskOnlyViews`), one category."""
    if source == "both":
        return ConcatViews(source_views(data, "real", split), source_views(data, "library", split))
    root = data.real if source == "real" else data.library
    return ClassAgnosticViews(MaskOnlyViews(ShapeNetAmodalDataset(root, split)))


def framed_views(data: StudyData, source: str, split: str) -> FramedViews:
    """:func:`source_views` framed as pretraining frames them (how models are scored)."""
    return FramedViews(source_views(data, source, split), DEFAULT_CROP_SCALE)


def training_components(data: StudyData, source: str) -> PretrainComponents:
    """Pretraining on ``source``'s train and val splits (pretraining frames them)."""
    return PretrainComponents(
        open_split=lambda root, split: source_views(data, source, split),
        list_splits=lambda root: list(SPLITS),
        build_model=build_stage2,
    )


def model_seeds(spec: ModelSpec, scale: StudyScale, seed: int) -> list[int]:
    """``scale.seeds`` training seeds for a headline model, else one: ``seed, seed + 1, ...`` (the
    same for every model, so differences pair by seed index)."""
    return [seed + k for k in range(scale.seeds if spec.headline else 1)]


def run_folder(out: Path, spec: ModelSpec, index: int) -> Path:
    """The folder of ``spec``'s run of seed index ``index`` under the study folder ``out``."""
    return out / "runs" / spec.slug / f"seed-{index}"


def pretrain_settings(
    spec: ModelSpec, scale: StudyScale, data: StudyData, run: Path, seed: int, device: str
) -> PretrainSettings:
    """How ``spec`` is pretrained at ``scale`` into ``run``: ``scale.instances`` instances, flips,
    no cross-view, chosen on all of val."""
    steps = max(1, math.ceil(scale.instances / scale.batch_size))
    return PretrainSettings(
        data=data.real.parent,
        out=run,
        stage2_kind=spec.kind,
        stage2=stage2_settings(scale),
        train=study_train_settings(scale.lr, scale.batch_size, steps, seed, scale.validations),
        cross_view=False,
        framing=DEFAULT_CROP_SCALE,
        flip=True,
        device=device,
        val_instances=None,
        evaluate_tests=False,
    )


def training_provenance(
    spec: ModelSpec, scale: StudyScale, data: StudyData, settings: PretrainSettings
) -> dict[str, Any]:
    """The provenance of ``spec`` trained with ``settings``: the code, the stage-2 and training
    settings, the recipes of the data it learns from, and the seed."""
    stage2 = chosen_stage2(settings, scale.image_size)
    sources = ("real", "library") if spec.source == "both" else (spec.source,)
    return provenance(
        {
            "model": spec.name,
            "kind": spec.kind,
            "source": spec.source,
            "stage2": stage2.to_dict(),
            "train": asdict(settings.train),
            "pretrain": {"flip": settings.flip, "framing": settings.framing, "cross_view": settings.cross_view},
            "data": {source: data.recipes[source] for source in sources},
            "seed": settings.train.seed,
        }
    )


def train_model(
    spec: ModelSpec,
    scale: StudyScale,
    data: StudyData,
    run: Path,
    seed: int,
    device: str,
    log: Log,
    stale: str = "redo",
) -> dict[str, Any]:
    """Train ``spec`` with ``seed`` into ``run`` (resuming an interrupted run of the same code and
    settings) and return its record (``model.json``, with its provenance); a run of other code or
    settings is retrained from scratch (``stale="redo"``) or refused (``"refuse"``: InputError)."""
    settings = pretrain_settings(spec, scale, data, run, seed, device)
    current = training_provenance(spec, scale, data, settings)
    record = finished_run(spec.name, run, current, stale, log)
    if record is not None:
        return record
    settings.resume = (run / "last.pt").is_file()
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / RUN_STARTED, {"provenance": current}, indent=2)
    log(f"train {spec.name}, seed {seed}: {settings.train.steps} steps of {scale.batch_size}")
    result = pretrain(settings, training_components(data, spec.source))
    training = result.training
    record = {
        "name": spec.name,
        "steps": training.steps,
        "instances": training.steps * scale.batch_size,
        "seconds": training_seconds(run, scale.batch_size),
        "best_step": training.best_step,
        "val_miou": training.best_metric,
        "checkpoint": str(result.evaluated_checkpoint),
        "seed": seed,
        "commit": current["commit"],
        "provenance": current,
    }
    atomic_write_json(run / RUN_RECORD, record, indent=2)
    log(f"train {spec.name}: done in {record['seconds']:.0f} s, best val mIoU {100 * (record['val_miou'] or 0):.1f}")
    return record
