"""``a3d pretrain``: unsupervised pretraining of the 3D shape prior on single objects (paper 3.7).

The stage-2 network learns shapes from 2D masks alone: the only targets are the amodal masks of
the training views (and, with cross-view consistency, the masks of other views of the same
object); viewpoints and 3D models are never used. The data is a folder written by
``a3d prepare shapenet`` (splits ``train``, ``val``, ``test`` and optionally the held-out
viewpoint splits ``test_newview``, ``test_elevation``, ``test_combination``: views never seen in
training, :mod:`a3d_core.data.viewpoints`).

:func:`pretrain` trains with :func:`a3d_core.train.loop.train`, validates on ``val`` (mIoU)
once per epoch by default, then evaluates the selected checkpoint (``best.pt``, chosen on
``val``; ``last.pt`` without a ``val`` split) on every test split, beside the visible-mask
baseline on the same instances, and writes ``<out>/results.json``.

The data may also be a COCO-style instance file of ordinary (modal) masks: its class-agnostic
Deocclusion pairs (:mod:`a3d_core.data.prepare_modal`, ``a3d prepare modal --class-agnostic``'s
defaults) are prepared into ``<out>/modal-pairs`` first, and the run trains on them: one command
from a segmentation file to a completer of its shapes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from a3d_core.boxes import DEFAULT_CROP_SCALE
from a3d_core.data.framing import FramedViews
from a3d_core.data.prepare_modal import PHASES, PrepareModalConfig, prepared_modal_pairs
from a3d_core.data.shapenet import ShapeNetAmodalDataset, read_shard_manifest
from a3d_core.errors import InputError
from a3d_core.eval.instances import AmodalEvaluation, evaluate_amodal, evenly_spaced
from a3d_core.io.atomic import atomic_write_json
from a3d_core.model.asm import DEFAULT_KIND, MESH_KINDS, ASMSettings, build_stage2, settings_for_kind
from a3d_core.progress import SILENT, ProgressReporter, stage_callback
from a3d_core.runtime import seed_everything
from a3d_core.train.augment import HorizontalFlips
from a3d_core.train.checkpoint import load_checkpoint, load_model_state
from a3d_core.train.cross_view import CrossViewPairs
from a3d_core.train.distributed import DistributedContext, barrier, init_distributed, shutdown_distributed
from a3d_core.train.loop import TrainResult, TrainSettings, train

RESULTS_FILE = "results.json"
MODAL_PAIRS_FOLDER = "modal-pairs"
VALIDATION_SPLIT = "val"


def test_splits(splits: Sequence[str]) -> list[str]:
    """The test splits among ``splits``: ``test`` and the held-out viewpoint splits (``test_*``)."""
    return [split for split in splits if split == "test" or split.startswith("test_")]


BuildModel = Callable[[str, list[str], ASMSettings], nn.Module]
"""``build_model(kind, category_names, settings)``: a stage-2 network, as
:func:`~a3d_core.model.asm.build_stage2` builds it."""


@dataclass(frozen=True)
class PretrainComponents:
    """The parts pretraining is made of, passed in (defaults: :func:`shapenet_components`).

    Attributes:
        open_split: ``open_split(root, split)``: a dataset with ``categories`` and
            ``object_index``, items as :class:`~a3d_core.data.shapenet.ShapeNetAmodalDataset`'s.
        list_splits: ``list_splits(root)``: the names of the splits in ``root``.
        build_model: see :data:`BuildModel`.
    """

    open_split: Callable[[Path, str], Dataset]
    list_splits: Callable[[Path], Sequence[str]]
    build_model: BuildModel


def shapenet_splits(root: Path) -> list[str]:
    """The split names of a dataset written by ``a3d prepare shapenet``."""
    return list(read_shard_manifest(root)["shards"])


def shapenet_components() -> PretrainComponents:
    """The ShapeNet shard dataset of ``a3d prepare shapenet`` and the 3D-ASM network."""
    return PretrainComponents(open_split=ShapeNetAmodalDataset, list_splits=shapenet_splits, build_model=build_stage2)


@dataclass
class PretrainSettings:
    """What to pretrain, where.

    Attributes:
        data: dataset folder written by ``a3d prepare shapenet`` or ``a3d prepare modal``, or a
            COCO-style instance file (:func:`modal_pairs_of`).
        out: run folder (checkpoints, ``metrics.jsonl``, ``results.json``).
        stage2_kind: network kind (:data:`a3d_core.model.asm.KINDS`): ``a3d``, ``a3d-no-refine``
            (ablation), ``2d`` (2D baseline), ``2d-no-refine``, ``2d-unet``, ``shapedict``,
            ``shapedict-no-refine`` (its dictionary is fitted on the training masks first).
        stage2: the network's settings, as ``a3d finetune`` takes them. Pretraining sets three of
            them itself (:func:`stage2_settings`): ``image_size`` (the dataset's), ``input_framing``
            (``framing``) and ``cross_view_weight`` (``cross_view_weight`` when cross-view is on,
            else 0); :func:`~a3d_core.model.asm.build_stage2` refuses options that do not apply
            to ``stage2_kind``.
        train: the training loop's settings; ``val_every=None`` validates once per epoch.
        cross_view: cross-view consistency (paper 3.7); ``None``: on for the 3D kinds, off for 2D.
        cross_view_weight: weight of the cross-view term when it is on.
        framing: re-crop every view (training, validation and test) at the square around its
            amodal box, this many times the box's longer side, as the two-stage network crops
            instances (:mod:`a3d_core.data.framing`), so the prior transfers to ``a3d finetune``;
            ``None``: the views as they are (Kato's framing, the paper's pretraining data).
        flip: horizontal-flip augmentation, per object and epoch (:mod:`a3d_core.train.augment`);
            off in the paper.
        device: ``auto``, ``cpu`` or ``cuda[:N]`` (under ``torchrun``: one device per process).
        resume: continue the run in ``out`` from ``last.pt``.
        val_instances: validate on at most this many ``val`` instances, evenly spread (``None``: all).
        eval_batch_size: batch size of validation and test evaluation.
        evaluate_tests: evaluate the selected checkpoint on the test splits at the end (a
            benchmark that scores them itself turns it off).
    """

    data: Path
    out: Path
    stage2_kind: str = DEFAULT_KIND
    stage2: ASMSettings = field(default_factory=ASMSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    cross_view: bool | None = None
    cross_view_weight: float = 1.0
    framing: float | None = DEFAULT_CROP_SCALE
    flip: bool = False
    device: str = "auto"
    resume: bool = False
    val_instances: int | None = 512
    eval_batch_size: int = 64
    evaluate_tests: bool = True

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        if not 0.0 < self.cross_view_weight < float("inf"):
            raise ValueError(f"cross_view_weight must be positive and finite, got {self.cross_view_weight}")
        if self.val_instances is not None and self.val_instances < 1:
            raise ValueError(f"val_instances must be >= 1 or None, got {self.val_instances}")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if self.framing is not None and not 1.0 <= self.framing <= 4.0:
            raise ValueError(f"framing must be in [1, 4] or None, got {self.framing}")

    @property
    def uses_cross_view(self) -> bool:
        return self.stage2_kind in MESH_KINDS if self.cross_view is None else self.cross_view


def stage2_settings(settings: PretrainSettings, image_size: int) -> ASMSettings:
    """``settings.stage2`` with what pretraining decides: the dataset's ``image_size`` (the
    renderer's too), the ``framing`` of the views as ``input_framing``, and the cross-view weight
    (0 when cross-view is off), the view-cycle weights of its kind (:func:`settings_for_kind`)."""
    stage2 = settings.stage2
    chosen = dataclasses.replace(
        stage2,
        image_size=image_size,
        renderer=dataclasses.replace(stage2.renderer, image_size=image_size),
        input_framing=settings.framing,
        cross_view_weight=settings.cross_view_weight if settings.uses_cross_view else 0.0,
    )
    return settings_for_kind(settings.stage2_kind, chosen)


@dataclass(frozen=True)
class PretrainResult:
    """A finished pretraining run.

    Attributes:
        out: the run folder.
        model: the network kind.
        category_names: the model's categories, in order.
        cross_view: whether cross-view consistency was on.
        training: what the loop did.
        evaluated_checkpoint: the checkpoint whose weights were evaluated on the test splits.
        evaluations: split -> model and visible-baseline IoUs (every test split; empty on
            processes other than rank 0).
        main_process: whether this is the process that reports (rank 0).
    """

    out: Path
    model: str
    category_names: list[str]
    cross_view: bool
    training: TrainResult
    evaluated_checkpoint: Path
    evaluations: dict[str, AmodalEvaluation]
    main_process: bool = True

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary (``results.json``)."""
        return {
            "model": self.model,
            "category_names": self.category_names,
            "cross_view": self.cross_view,
            "steps": self.training.steps,
            "best_step": self.training.best_step,
            "evaluated_checkpoint": str(self.evaluated_checkpoint),
            "evaluations": {split: evaluation.as_dict() for split, evaluation in self.evaluations.items()},
        }


def pretrain(
    settings: PretrainSettings, components: PretrainComponents | None = None, progress: ProgressReporter = SILENT
) -> PretrainResult:
    """Pretrain a stage-2 network on ``settings.data`` into ``settings.out``; see the module docstring.

    ``progress`` receives the phases ``train`` and ``evaluate <split>`` of each test split (when
    ``settings.train.progress``).

    Raises:
        InputError: a missing dataset or split, an unknown model kind, a run folder in the way.
        TrainingError: a non-finite loss; a ``--resume`` whose checkpoint is of another model.
    """
    components = components or shapenet_components()
    if settings.framing is not None:
        open_views = components.open_split
        components = dataclasses.replace(
            components, open_split=lambda root, split: FramedViews(open_views(root, split), settings.framing)
        )
    context = init_distributed(settings.device)
    try:
        annotations = None
        if settings.data.is_file():
            annotations = settings.data
            settings = dataclasses.replace(settings, data=modal_pairs_of(settings, context, progress))
        splits = list(components.list_splits(settings.data))
        if "train" not in splits:
            raise InputError(f"{settings.data}: no train split (has {', '.join(splits) or 'none'})")
        train_set = components.open_split(settings.data, "train")
        if len(train_set) == 0:
            raise InputError(f"{settings.data}: the train split is empty")
        category_names = [str(name) for name in train_set.categories]
        image_size = int(train_set[0]["rgb"].shape[-1])
        cross_view = settings.uses_cross_view

        seed_everything(settings.train.seed)
        try:
            stage2 = stage2_settings(settings, image_size)
            model = components.build_model(settings.stage2_kind, category_names, stage2)
        except ValueError as error:
            raise InputError(f"--model {settings.stage2_kind}: {error}") from None
        if getattr(model, "needs_fitting", False):
            fit_to_training_masks(model, train_set, settings.train.seed)
        training_data = HorizontalFlips(train_set, seed=settings.train.seed) if settings.flip else train_set
        if cross_view:
            training_data = CrossViewPairs(training_data, seed=settings.train.seed)

        validate = None
        if VALIDATION_SPLIT in splits:
            val_set = evenly_spaced(components.open_split(settings.data, VALIDATION_SPLIT), settings.val_instances)

            def validate(trained: nn.Module) -> dict[str, float]:
                return evaluate_amodal(
                    trained,
                    val_set,
                    category_names,
                    split=VALIDATION_SPLIT,
                    device=context.device,
                    batch_size=settings.eval_batch_size,
                ).as_metrics()

        train_settings = settings.train
        if train_settings.val_every is None:
            train_settings = dataclasses.replace(
                train_settings, val_every=max(1, len(training_data) // train_settings.batch_size)
            )
        run_config = {
            "pretrain": {
                "data": str(settings.data),
                "annotations": None if annotations is None else str(annotations),
                "model": settings.stage2_kind,
                "cross_view": cross_view,
                "framing": settings.framing,
                "flip": settings.flip,
                "stage2": stage2.to_dict(),
            }
        }
        training = train(
            model,
            training_data,
            train_settings,
            settings.out,
            validate=validate,
            checkpoint_metadata={"model_config": model.config(), "category_names": category_names},
            run_config=run_config,
            resume=settings.resume,
            context=context,
            progress=progress,
        )

        evaluated = training.best_checkpoint or training.last_checkpoint
        evaluations: dict[str, AmodalEvaluation] = {}
        if context.is_main and settings.evaluate_tests:
            load_model_state(model, load_checkpoint(evaluated), evaluated)
            for split in test_splits(splits):
                evaluations[split] = evaluate_amodal(
                    model,
                    components.open_split(settings.data, split),
                    category_names,
                    split=split,
                    device=context.device,
                    batch_size=settings.eval_batch_size,
                    progress=progress if settings.train.progress else SILENT,
                )
        result = PretrainResult(
            out=settings.out,
            model=settings.stage2_kind,
            category_names=category_names,
            cross_view=cross_view,
            training=training,
            evaluated_checkpoint=evaluated,
            evaluations=evaluations,
            main_process=context.is_main,
        )
        if context.is_main:
            atomic_write_json(settings.out / RESULTS_FILE, result.as_dict(), indent=2)
        barrier(context)
        return result
    finally:
        shutdown_distributed(context)


def modal_pairs_of(settings: PretrainSettings, context: DistributedContext, progress: ProgressReporter) -> Path:
    """The class-agnostic Deocclusion pairs of the instance file ``settings.data`` (Deocclusion's
    setting: one ``object`` prior; the defaults of ``a3d prepare modal``, whose options choose
    others), in ``<out>/modal-pairs``: prepared by the main process unless a rerun's are there."""
    config = PrepareModalConfig(annotations=settings.data, out=settings.out / MODAL_PAIRS_FOLDER, class_agnostic=True)
    if context.is_main:
        prepared_modal_pairs(config, stage_callback(progress, PHASES))
        progress.end()
    barrier(context)
    return config.out


def fit_to_training_masks(model: nn.Module, train_set: Dataset, seed: int) -> None:
    """Fit a model built from training masks (ShapeDict) on the amodal masks of ``train_set``,
    as the network sees them (framed like its inputs)."""
    items = [train_set[i] for i in range(len(train_set))]
    amodal = torch.stack([item["amodal"][0] for item in items])
    categories = torch.stack([item["category"] for item in items])
    model.fit_to_masks(amodal, categories, seed)
