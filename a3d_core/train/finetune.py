"""``a3d finetune``: train both stages on an amodal dataset, from a pretrained shape prior (paper 3.7).

:func:`finetune` builds the two-stage network (:mod:`a3d_core.model.a3d`) for the categories of
a canonical dataset (``a3d prepare ...``; labels ``1..C`` follow the category ids,
:class:`~a3d_core.data.detection.CategoryMapping`) and trains it with the same loop as
``a3d pretrain`` (:func:`a3d_core.train.loop.train`: progress, exact resume, atomic
checkpoints, DDP under ``torchrun``).

Initialisation (paper 3.7): with ``init`` (a stage-2 checkpoint of ``a3d pretrain``), stage 2
takes the pretrained network's kind and settings; everything not specific to a category is
copied, and each fine-tuning category whose NAME is a pretraining category, or that the category
map sends to one (:mod:`a3d_core.data.category_map`: the shipped table, e.g. ``couch -> sofa``,
``van -> car``, overridden by ``category_map``), reuses that category's classifier row and shape
decoder; the other categories start fresh.
Without ``init`` stage 2 trains from scratch (paper Table 3, "N"). Stage 1 starts from local
torchvision weights when given (``backbone_weights``, ``detector_weights``), else from scratch.

Validation on the ``val`` split (at most ``val_images`` images) predicts with the network in
eval mode and scores the predictions with :mod:`a3d_core.eval` as ``a3d evaluate`` does:
amodal mask AP (COCO), AP50 and mIoU; ``best.pt`` keeps the best AP.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Subset

from a3d_core.boxes import DEFAULT_CROP_SCALE
from a3d_core.data.canonical import AmodalDataset, AmodalSplit, read_dataset
from a3d_core.data.catalog import resolve_dataset
from a3d_core.data.category_map import CategoryMap
from a3d_core.data.detection import AmodalDetectionDataset, collate_detection
from a3d_core.errors import InputError
from a3d_core.eval.evaluate import EvaluationSettings, evaluate_predictions
from a3d_core.eval.predictions import detections_to_results
from a3d_core.io.atomic import atomic_write_json
from a3d_core.model.a3d import A3DNetwork, A3DSettings, build_a3d
from a3d_core.model.asm import (
    DEFAULT_KIND,
    AmodalShapeModel,
    ASMSettings,
    load_stage2_from_checkpoint,
    transfer_pretrained,
)
from a3d_core.model.stage1 import SMALL_ANCHOR_SIZES, Stage1Settings, load_backbone_weights, load_detector_weights
from a3d_core.progress import SILENT, ProgressReporter
from a3d_core.train.distributed import barrier, init_distributed, shutdown_distributed
from a3d_core.train.loop import TrainResult, TrainSettings, train

RESULTS_FILE = "results.json"
BEST_METRIC = "ap"


def small_stage1_settings(
    backbone: str = "mobilenet_v3-fpn",
    min_size: int = 128,
    max_size: int = 256,
    anchor_sizes: tuple[int, ...] = SMALL_ANCHOR_SIZES,
    norm: str = "group",
) -> Stage1Settings:
    """Stage-1 settings sized for a CPU and small images: smaller anchors, fewer proposals and
    sampled RoIs than torchvision's defaults (the paper's 800-pixel images need those), and
    GroupNorm in a backbone trained from scratch on a few images a step. The mask head, which
    costs most of a CPU step, sees at most a quarter of the 32 sampled RoIs."""
    return Stage1Settings(
        num_classes=1,
        backbone=backbone,
        norm=norm,
        min_size=min_size,
        max_size=max_size,
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=100,
        rpn_pre_nms_top_n_test=150,
        rpn_post_nms_top_n_test=50,
        box_batch_size_per_image=32,
        box_detections_per_img=30,
        anchor_sizes=tuple(anchor_sizes),
    )


@dataclass
class FinetuneSettings:
    """What to fine-tune, from what, where.

    Attributes:
        dataset: a canonical dataset folder, or its name under the data root.
        out: the run folder (``last.pt``, ``best.pt``, ``metrics.jsonl``, ``results.json``).
        init: a stage-2 checkpoint of ``a3d pretrain``; ``None``: stage 2 from scratch.
        category_map: JSON file ``{fine-tuning name: pretraining name or null}`` over the shipped
            map (:mod:`a3d_core.data.category_map`).
        shipped_category_map: use the shipped map; ``False``: exact names (and ``category_map``) only.
        stage1: stage-1 settings (``num_classes`` is set from the dataset).
        backbone_weights, detector_weights: local torchvision checkpoints for stage 1.
        stage1_lr: Adam's learning rate for stage 1 (``None``: ``train.lr``). A detector that
            starts from scratch needs a larger one than the pretrained stage 2.
        stage2_kind, stage2: stage 2 without ``init`` (with ``init`` the checkpoint's are used).
        crop_scale: the side of an instance's crop / its amodal box's longer side
            (:class:`~a3d_core.model.a3d.A3DSettings`); ``None``: the framing the ``init``
            checkpoint was pretrained with (``input_framing``), else 1.1.
        jitter, max_instances_per_image, train_on_detections: see
            :class:`~a3d_core.model.a3d.A3DSettings`.
        train: the training loop's settings (``batch_size`` counts images); ``val_every=None``
            validates once per epoch.
        train_split, val_split: split names; a missing ``val_split`` means no validation.
        val_images: validate on at most this many images (the first ones of the split).
        val_score_threshold: detections below this score are left out of validation.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        resume: continue the run in ``out``.
        data_root: where dataset names are looked up.
    """

    dataset: str | Path
    out: Path
    init: Path | None = None
    category_map: Path | None = None
    shipped_category_map: bool = True
    stage1: Stage1Settings = field(default_factory=lambda: small_stage1_settings())
    backbone_weights: Path | None = None
    detector_weights: Path | None = None
    stage1_lr: float | None = None
    stage2_kind: str = DEFAULT_KIND
    stage2: ASMSettings = field(default_factory=lambda: ASMSettings(image_size=64, template_level=2))
    crop_scale: float | None = None
    jitter: float = 0.1
    max_instances_per_image: int = 16
    train_on_detections: bool = False
    train: TrainSettings = field(
        default_factory=lambda: TrainSettings(batch_size=4, epochs=10, best_metric=BEST_METRIC)
    )
    train_split: str = "train"
    val_split: str = "val"
    val_images: int = 50
    val_score_threshold: float = 0.05
    device: str = "auto"
    resume: bool = False
    data_root: Path | None = None

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.val_images < 1:
            raise ValueError(f"val_images must be at least 1, got {self.val_images}")
        if not 0.0 <= self.val_score_threshold < 1.0:
            raise ValueError(f"val_score_threshold must be in [0, 1), got {self.val_score_threshold}")
        if self.stage1_lr is not None and not self.stage1_lr > 0:
            raise ValueError(f"stage1_lr must be positive, got {self.stage1_lr}")
        if self.train.best_metric != BEST_METRIC:
            self.train = dataclasses.replace(self.train, best_metric=BEST_METRIC)


@dataclass(frozen=True)
class CategoryTransfer:
    """How the fine-tuning categories were initialised.

    Attributes:
        transferred: fine-tuning name -> the pretraining category it reuses.
        fresh: fine-tuning categories that start from a fresh initialisation.
        source: the pretraining checkpoint (``None``: stage 2 from scratch).
    """

    transferred: dict[str, str]
    fresh: list[str]
    source: Path | None


@dataclass(frozen=True)
class FinetuneResult:
    """A finished fine-tuning run (``main_process`` is False on the other ranks of a DDP run)."""

    out: Path
    dataset: str
    category_names: list[str]
    transfer: CategoryTransfer
    training: TrainResult
    weight_reports: list[str]
    main_process: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "category_names": self.category_names,
            "init": str(self.transfer.source) if self.transfer.source else None,
            "transferred": self.transfer.transferred,
            "fresh": self.transfer.fresh,
            "steps": self.training.steps,
            "best_step": self.training.best_step,
            "best_ap": self.training.best_metric,
            "validation": self.training.validation,
            "weights": self.weight_reports,
        }


def transfer_categories(
    target: AmodalShapeModel, source: AmodalShapeModel, category_map: CategoryMap | None = None
) -> dict[str, str]:
    """Initialise stage 2 from a pretrained one (paper 3.7); returns fine-tuning name -> pretraining name.

    Shared parts as :func:`~a3d_core.model.asm.transfer_pretrained`; each fine-tuning category
    that ``category_map`` (default: the shipped map) resolves to a pretraining category
    (:meth:`~a3d_core.data.category_map.CategoryMap.resolve`: same name first) copies it.

    Raises:
        InputError: a user map entry naming a class or category that is not there.
    """
    pairs = (category_map or CategoryMap()).resolve(target.category_names, source.category_names)
    transfer_pretrained(target, source, pairs)
    return pairs


def build_finetune_model(
    settings: FinetuneSettings, category_names: list[str]
) -> tuple[A3DNetwork, CategoryTransfer, list[str]]:
    """The two-stage network for ``category_names``, initialised as the settings say.

    Returns the network, how its categories were initialised, and one line per weights file loaded.
    """
    pretrained = settings.backbone_weights is not None or settings.detector_weights is not None
    stage1 = dataclasses.replace(settings.stage1, pretrained_backbone=pretrained)
    source = None
    kind, stage2 = settings.stage2_kind, settings.stage2
    if settings.init is not None:
        source = load_stage2_from_checkpoint(settings.init)
        if source.settings.viewpoint.camera == "oracle":
            raise InputError(
                f"{settings.init}: pretrained with the oracle camera (an upper bound that needs the true camera of "
                "every instance); fine-tuning has no cameras: start from a 'learned' or 'supervised' pretraining"
            )
        kind, stage2 = source.kind, source.settings
    # Cross-view pairs, the view cycle and camera supervision are pretraining's (paper 3.7: fine-tuning sees
    # single crops, without cameras); a camera-supervised estimator goes on predicting the camera.
    losses = dataclasses.replace(stage2.losses, view_cycle_camera=0.0, view_cycle_shape=0.0, camera_supervision=0.0)
    stage2 = dataclasses.replace(stage2, cross_view_weight=0.0, losses=losses)
    crop_scale = settings.crop_scale or stage2.input_framing or DEFAULT_CROP_SCALE
    try:
        stage2 = dataclasses.replace(stage2, input_framing=crop_scale)
        a3d_settings = A3DSettings(
            stage1=stage1,
            stage2_kind=kind,
            stage2=stage2,
            crop_scale=crop_scale,
            jitter=settings.jitter,
            max_instances_per_image=settings.max_instances_per_image,
            train_on_detections=settings.train_on_detections,
        )
        network = build_a3d(category_names, a3d_settings)
    except ValueError as error:
        raise InputError(str(error)) from None
    reports = []
    if settings.detector_weights is not None:
        reports.append(load_detector_weights(network.stage1, settings.detector_weights).summary())
    elif settings.backbone_weights is not None:
        reports.append(load_backbone_weights(network.stage1, settings.backbone_weights).summary())
    transferred: dict[str, str] = {}
    if source is not None:
        category_map = CategoryMap.load(settings.category_map, settings.shipped_category_map)
        transferred = transfer_categories(network.stage2, source, category_map)
    elif settings.category_map is not None:
        raise InputError("--category-map maps pretraining categories: it needs --init")
    fresh = [name for name in category_names if name not in transferred]
    return network, CategoryTransfer(transferred, fresh, settings.init), reports


def split_subset(split: AmodalSplit, image_count: int) -> AmodalSplit:
    """The first ``image_count`` images of a split with their annotations (all categories kept)."""
    images = split.images[:image_count]
    kept = {int(image["id"]) for image in images}
    annotations = [a for a in split.annotations if int(a["image_id"]) in kept]
    return AmodalSplit(images, annotations, split.categories, split.info)


def validation_metrics(
    network: A3DNetwork,
    dataset: AmodalDetectionDataset,
    split: AmodalSplit,
    device: Any,
    score_threshold: float = 0.05,
    batch_size: int = 4,
) -> dict[str, float]:
    """Predict every image of ``dataset`` (eval mode) and score against ``split`` as ``a3d evaluate`` does.

    Returns ``ap``, ``ap50``, ``ap75`` (amodal mask AP, COCO), ``miou`` (mean IoU of each
    ground-truth instance with its best-matching prediction), ``detections``.
    """
    category_ids = list(dataset.categories.category_ids)
    predictions: list[dict[str, Any]] = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        outputs = network([image.to(device) for image, _ in items])
        for (_, target), detections in zip(items, outputs):
            predictions += detections_to_results(detections, target["image_id"], category_ids, score_threshold)
    settings = EvaluationSettings(kinds=("amodal",), occlusion_order=False, device=str(device))  # AP alone is read
    result = evaluate_predictions(split, predictions, settings)
    stats = result.kinds["amodal"].stats
    return {
        "ap": max(stats["AP"], 0.0),
        "ap50": max(stats["AP50"], 0.0),
        "ap75": max(stats["AP75"], 0.0),
        "miou": result.segments.miou if result.segments is not None else 0.0,
        "detections": float(len(predictions)),
    }


def _validation(
    folder: AmodalDataset, settings: FinetuneSettings, train_set: AmodalDetectionDataset, device: torch.device
) -> Callable[[nn.Module], dict[str, float]]:
    """The loop's ``validate`` function: :func:`validation_metrics` on the first ``val_images`` val images."""
    val_full = AmodalDetectionDataset(folder, settings.val_split)
    if val_full.categories != train_set.categories:
        raise InputError(f"{folder.root}: {settings.val_split} and {settings.train_split} list different categories")
    count = min(settings.val_images, len(val_full))
    val_set = Subset(val_full, range(count))
    val_set.categories = val_full.categories
    val_split = split_subset(val_full.split, count)

    def validate(model: nn.Module) -> dict[str, float]:
        return validation_metrics(model, val_set, val_split, device, settings.val_score_threshold)

    return validate


def finetune(settings: FinetuneSettings, progress: ProgressReporter = SILENT) -> FinetuneResult:
    """Fine-tune the two-stage network; see the module docstring. ``progress`` receives the phase ``train``.

    Raises:
        InputError: a missing dataset, split or checkpoint, a bad category map, a run folder in the way.
        TrainingError: a non-finite loss; a ``resume`` whose checkpoint is of another model.
    """
    context = init_distributed(settings.device)
    try:
        folder = read_dataset(resolve_dataset(settings.dataset, settings.data_root))
        train_set = AmodalDetectionDataset(folder, settings.train_split)
        if len(train_set) == 0:
            raise InputError(f"{folder.split_path(settings.train_split)}: the split has no images")
        category_names = list(train_set.categories.names)
        network, transfer, reports = build_finetune_model(settings, category_names)

        validate = None
        if settings.val_split in folder.splits:
            validate = _validation(folder, settings, train_set, context.device)

        train_settings = settings.train
        if settings.stage1_lr is not None:
            scales = {**train_settings.lr_scales, "stage1.": settings.stage1_lr / train_settings.lr}
            train_settings = dataclasses.replace(train_settings, lr_scales=scales)
        if train_settings.val_every is None:
            train_settings = dataclasses.replace(
                train_settings, val_every=max(1, len(train_set) // train_settings.batch_size)
            )
        run_config = {
            "finetune": {
                "dataset": str(folder.root),
                "init": str(settings.init) if settings.init else None,
                "transferred": transfer.transferred,
                "val_images": settings.val_images,
            }
        }
        training = train(
            network,
            train_set,
            train_settings,
            settings.out,
            validate=validate,
            collate_fn=collate_detection,
            checkpoint_metadata={
                "model_config": network.config(),
                "category_names": category_names,
                "category_ids": list(train_set.categories.category_ids),
            },
            run_config=run_config,
            resume=settings.resume,
            context=context,
            progress=progress,
        )
        result = FinetuneResult(
            out=settings.out,
            dataset=folder.name,
            category_names=category_names,
            transfer=transfer,
            training=training,
            weight_reports=reports,
            main_process=context.is_main,
        )
        if context.is_main:
            atomic_write_json(settings.out / RESULTS_FILE, result.as_dict(), indent=2)
        barrier(context)
        return result
    finally:
        shutdown_distributed(context)
