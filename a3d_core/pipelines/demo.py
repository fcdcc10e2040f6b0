"""``a3d demo``: the whole two-stage pipeline at a small scale, on the built-in data, into one browsable folder.

Steps (each is the pure function behind an ``a3d`` command, with small settings from a
:class:`DemoPlan`):

1. ``prepare shapenet``: built-in shape-library objects rendered at Kato's views, synthetically occluded;
2. ``pretrain``: stage 2 (``DemoPlan.stage2_kind``, a3d's default kind; ``a3d``: the paper's 3D shape
   prior) learns from those 2D masks alone (paper 3.7);
3. ``prepare scenes``: multi-object scenes of other objects of the same categories, with exact amodal ground truth;
4. ``finetune``: both stages on the scenes, stage 2 initialised from the prior by category name;
5. ``evaluate``: amodal AP and mIoU on the scenes' val split, beside the visible-mask baseline
   (the same detections with their visible masks as amodal masks: what completion gains);
6. stage 2 alone on the ground-truth boxes and visible masks of the val split: ``evaluate
   --protocol completion`` measures stage 2's completion without detection errors
   (beside the visible-mask baseline), draws it and exports the meshes (OBJ) and turntables (GIF)
   of a few occluded instances, and ``complete`` completes the ground truth of a few val images
   handed over as a segmenter's visible-mask results;
7. ``predict``: panels (input | visible mask | amodal mask, the completed hidden part in its
   own colour; :mod:`a3d_core.io.panels`), masks and meshes for val images, from stage-1 detections.

The output folder::

    index.md                  what each file is, the evaluation table, the timings
    summary.png               the most occluded val instances completed by stage 2, beside the ground truth
    evaluation.json, evaluation.md
    previews/                 shapenet.png (pretraining views), scenes.png (scenes with their masks)
    overlays/                 one panels PNG per predicted image (stage-1 detections, completed)
    completion/               one panels PNG per val image: ground-truth instances completed by stage 2;
                              visible.json, the visible masks handed to `a3d complete`
    complete/                 `a3d complete`'s output folder for those images
    meshes/                   val_<image>_instance_<k>.obj and ..._turntable.gif: occluded instances' meshes
    predict/                  `a3d predict`'s output folder for the predicted images
    data/, runs/              the prepared datasets and the two training runs (checkpoints, metrics)
    predictions/              COCO results of the val split (for `a3d evaluate --predictions`)

:data:`FULL` is sized to finish well inside CI's budget on a 2-core CPU (its measured times and
scores, with the runs that made them: docs/results.md, "The two-stage demo"); :data:`QUICK` is
for tests: it only shows that every step connects.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from a3d_core.data.canonical import read_dataset
from a3d_core.data.detection import AmodalDetectionDataset
from a3d_core.data.prepare_scenes import ObjectPoolSettings, ScenesRequest, prepare_scenes
from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
from a3d_core.data.scenes import SceneSettings
from a3d_core.errors import InputError
from a3d_core.eval.evaluate import EvaluationResult, EvaluationSettings, evaluate_predictions, load_predictions
from a3d_core.io.atomic import atomic_write_json, atomic_write_text
from a3d_core.io.images import write_png
from a3d_core.io.meshes import render_turntable, write_gif, write_obj
from a3d_core.io.panels import figure_of_rows, instance_figure, instance_row
from a3d_core.model.asm import DEFAULT_KIND, MESH_KINDS, ASMSettings
from a3d_core.pipelines.complete import CompleteSettings, complete_images
from a3d_core.pipelines.completers import VisibleCompleter, load_checkpoint_completer
from a3d_core.pipelines.evaluate import evaluate_checkpoint, evaluate_completion
from a3d_core.pipelines.predict import PredictSettings, predict_images
from a3d_core.progress import SILENT, Prefixed, ProgressReporter, count_callback, stage_callback
from a3d_core.train.finetune import FinetuneSettings, finetune, small_stage1_settings
from a3d_core.train.loop import TrainSettings
from a3d_core.train.pretrain import PretrainSettings, pretrain

PANELS_LEGEND = (
    "the input; the visible mask (blue); the amodal mask, its completed hidden part in orange; "
    "the ground truth drawn the same way, with the predicted mask's outline in white."
)
"""What the columns of the panels (:mod:`a3d_core.io.panels`) show, for the front page."""
MESH_MIN_OCCLUSION = 0.2
"""Meshes are exported for ground-truth instances at least this occluded (1 - visible / amodal area)."""

STEPS = 7
"""The demo's steps; progress phases are named ``"<k>/7 <step>: <phase>"``."""


@dataclass(frozen=True)
class DemoPlan:
    """How big each step of the demo is.

    Attributes:
        categories: shape-library categories used throughout.
        objects_per_category, views, image_size: the pretraining data (``image_size`` is also
            stage 2's crop side).
        template_level: stage 2's ico-sphere level.
        pretrain_steps, pretrain_batch: pretraining length (instances per step).
        cross_view: cross-view consistency in pretraining (paper 3.7).
        scene_width, scene_height, scene_objects, train_scenes, val_scenes, scene_objects_per_category:
            the scenes dataset.
        finetune_steps, finetune_batch, finetune_val_every: fine-tuning length (images per step).
        finetune_lr, stage1_lr: Adam's learning rates of the pretrained stage 2 (small: a larger
            one lets the edge refine learn to copy the visible mask and forget the prior) and of
            stage 1, which starts from scratch.
        finetune_jitter: the largest move of a ground-truth box side in stage-2 training.
        stage1_backbone, stage1_min_size: stage 1 on the CPU.
        predict_images: val images predicted into ``overlays/`` (and drawn completed in ``completion/``).
        summary_instances: the most occluded val instances shown in ``summary.png``.
        meshes: occluded ground-truth instances whose meshes are exported.
        predict_score_threshold: detections shown in the overlays score at least this.
        overlay_scale: overlays are drawn this many times larger than the scenes.
        turntable_frames, turntable_size: the GIFs.
        stage2_kind: the stage-2 kind pretrained and fine-tuned (``a3d demo --model``); meshes
            are exported for the mesh kinds (:data:`~a3d_core.model.asm.MESH_KINDS`) only.

    Each step's settings come from a method (:meth:`shapenet_config`, :meth:`pretrain_settings`,
    :meth:`scenes_request`, :meth:`finetune_settings`), so that a study can train exactly as the
    demo does (:mod:`a3d_core.experiments.twostage`).
    """

    categories: tuple[str, ...] = ("airplane", "car", "chair")
    objects_per_category: int = 10
    views: int = 12
    image_size: int = 48
    template_level: int = 2
    pretrain_steps: int = 400
    pretrain_batch: int = 16
    cross_view: bool = False
    scene_width: int = 128
    scene_height: int = 96
    scene_objects: tuple[int, int] = (2, 4)
    train_scenes: int = 120
    val_scenes: int = 16
    scene_objects_per_category: int = 3
    finetune_steps: int = 200
    finetune_batch: int = 4
    finetune_val_every: int = 100
    finetune_lr: float = 3e-5
    stage1_lr: float = 1e-3
    finetune_jitter: float = 0.05
    stage1_backbone: str = "resnet18-fpn"
    stage1_min_size: int = 96
    predict_images: int = 6
    summary_instances: int = 6
    predict_score_threshold: float = 0.5
    overlay_scale: int = 3
    meshes: int = 3
    turntable_frames: int = 16
    turntable_size: int = 96
    stage2_kind: str = DEFAULT_KIND

    def shapenet_config(self, out: Path, seed: int, preview: Path | None = None) -> PrepareShapeNetConfig:
        """Step 1: the pretraining views."""
        return PrepareShapeNetConfig(
            out=out,
            objects_per_category=self.objects_per_category,
            views=self.views,
            image_size=self.image_size,
            categories=self.categories,
            seed=seed,
            preview=preview,
        )

    def pretrain_settings(self, data: Path, out: Path, seed: int, device: str) -> PretrainSettings:
        """Step 2: stage 2 (``stage2_kind``) pretrained on the views in ``data``."""
        return PretrainSettings(
            data=data,
            out=out,
            stage2_kind=self.stage2_kind,
            train=TrainSettings(
                batch_size=self.pretrain_batch,
                epochs=None,
                steps=self.pretrain_steps,
                seed=seed,
                val_every=self.pretrain_steps,
                tensorboard=False,
            ),
            stage2=ASMSettings(template_level=self.template_level),
            cross_view=self.cross_view,
            device=device,
            val_instances=64,
        )

    def scenes_request(self, out: Path, seed: int, preview: Path | None = None) -> ScenesRequest:
        """Step 3: the multi-object scenes (train and val)."""
        return ScenesRequest(
            train_images=self.train_scenes,
            val_images=self.val_scenes,
            categories=self.categories,
            scene=SceneSettings(
                width=self.scene_width,
                height=self.scene_height,
                objects_min=self.scene_objects[0],
                objects_max=self.scene_objects[1],
            ),
            pool=ObjectPoolSettings(
                train_objects=self.scene_objects_per_category, val_objects=self.scene_objects_per_category
            ),
            seed=seed,
            out_dir=out,
            preview_path=preview,
        )

    def finetune_settings(
        self, dataset: Path, out: Path, init: Path | None, seed: int, device: str
    ) -> FinetuneSettings:
        """Step 4: both stages fine-tuned on the scenes in ``dataset``, stage 2 from ``init``; the
        checkpoint is chosen by the full pipeline's amodal AP on the val scenes."""
        return FinetuneSettings(
            dataset=dataset,
            out=out,
            init=init,
            stage1=small_stage1_settings(self.stage1_backbone, self.stage1_min_size, 2 * self.stage1_min_size),
            stage1_lr=self.stage1_lr,
            stage2_kind=self.stage2_kind,
            jitter=self.finetune_jitter,
            train=TrainSettings(
                lr=self.finetune_lr,
                batch_size=self.finetune_batch,
                epochs=None,
                steps=self.finetune_steps,
                seed=seed,
                val_every=self.finetune_val_every,
                tensorboard=False,
                best_metric="ap",
            ),
            val_images=self.val_scenes,
            device=device,
        )


FULL = DemoPlan()
"""The demo's default plan (its measured time: docs/results.md)."""

QUICK = DemoPlan(
    categories=("car", "chair"),
    objects_per_category=3,
    views=4,
    image_size=32,
    template_level=1,
    pretrain_steps=2,
    pretrain_batch=4,
    scene_width=64,
    scene_height=48,
    scene_objects=(2, 2),
    train_scenes=2,
    val_scenes=2,
    scene_objects_per_category=1,
    finetune_steps=2,
    finetune_batch=2,
    finetune_val_every=2,
    stage1_min_size=48,
    predict_images=1,
    summary_instances=2,
    predict_score_threshold=0.0,
    meshes=1,
    turntable_frames=2,
    turntable_size=32,
)
"""Seconds: every step runs, nothing learns much (for tests)."""


@dataclass
class DemoResult:
    """What the demo wrote and how long each step took.

    Attributes:
        out: the demo folder; index: its ``index.md``.
        seconds: step name -> wall seconds; cpu_seconds: step name -> CPU seconds of this process
            (all threads), which do not depend on what else runs on the machine.
        metrics: ``model``, ``visible_baseline``, ``stage2_on_ground_truth`` and
            ``ground_truth_visible`` -> ``AP``, ``AP50``, ``AP75``, ``mIoU``, ``mIoU_occ`` (fractions).
        transferred: fine-tuning category -> the pretrained category it started from.
        summary: ``summary.png``; overlays, completions, meshes: files written.
        detections_shown: detections drawn in the overlays (scoring at least ``predict_score_threshold``).
    """

    out: Path
    index: Path
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    transferred: dict[str, str] = field(default_factory=dict)
    summary: Path | None = None
    overlays: list[Path] = field(default_factory=list)
    completions: list[Path] = field(default_factory=list)
    meshes: list[Path] = field(default_factory=list)
    detections_shown: int = 0

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def run_demo(
    out: str | Path,
    plan: DemoPlan = FULL,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: ProgressReporter = SILENT,
) -> DemoResult:
    """Run every step of the demo into ``out`` (see the module docstring).

    ``progress`` receives each step's phases, named ``"<k>/7 <step>: <phase>"``.

    Raises:
        InputError: ``out`` exists and is not empty, unless ``overwrite``.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(
                f"{out}: exists and is not empty (pass --overwrite to replace it, or choose another folder)"
            )
        shutil.rmtree(out)
    for folder in ("previews", "overlays", "completion", "meshes", "data", "runs"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    result = DemoResult(out=out, index=out / "index.md")
    torch.manual_seed(seed)

    def timed(name: str, action: Callable[[ProgressReporter], Any]) -> Any:
        """Run one step; ``action`` gets the reporter of the step's phases."""
        started, cpu_started = time.perf_counter(), time.process_time()
        value = action(Prefixed(progress, f"{len(result.seconds) + 1}/{STEPS} {name}"))
        progress.end()
        result.seconds[name] = time.perf_counter() - started
        result.cpu_seconds[name] = time.process_time() - cpu_started
        return value

    shapenet_dir, scenes_dir = out / "data" / "shapenet", out / "data" / "scenes"
    view_phases = {"render": ("render the pretraining views", "view"), "occlude": ("occlude them", "view")}
    timed(
        "prepare shapenet",
        lambda reporter: prepare_shapenet(
            plan.shapenet_config(shapenet_dir, seed, out / "previews" / "shapenet.png"),
            stage_callback(reporter, view_phases),
        ),
    )

    pretrained = timed(
        "pretrain",
        lambda reporter: pretrain(
            plan.pretrain_settings(shapenet_dir, out / "runs" / "pretrain", seed, device), progress=reporter
        ),
    )

    scene_phases = {
        "render": ("render the objects", "view"),
        "train": ("compose train scenes", "image"),
        "val": ("compose val scenes", "image"),
    }
    timed(
        "prepare scenes",
        lambda reporter: prepare_scenes(
            plan.scenes_request(scenes_dir, seed, out / "previews" / "scenes.png"),
            stage_callback(reporter, scene_phases),
        ),
    )
    finetuned = timed(
        "finetune",
        lambda reporter: finetune(
            plan.finetune_settings(scenes_dir, out / "runs" / "scenes", pretrained.evaluated_checkpoint, seed, device),
            progress=reporter,
        ),
    )
    result.transferred = dict(finetuned.transfer.transferred)
    checkpoint = finetuned.training.best_checkpoint or finetuned.training.last_checkpoint

    evaluated = timed(
        "evaluate",
        lambda reporter: evaluate_checkpoint(
            scenes_dir,
            "val",
            PredictSettings(checkpoint=checkpoint, score_threshold=0.05, device=device, masks=False),
            EvaluationSettings(kinds=("amodal",)),
            predictions_dir=out / "predictions",
            progress=reporter,
        ),
    )
    baseline = visible_baseline(scenes_dir, "val", evaluated.prediction.predictions_file)
    result.metrics = {"model": headline_metrics(evaluated.evaluation), "visible_baseline": headline_metrics(baseline)}
    oracle, result.summary, result.completions, result.meshes = timed(
        "complete ground truth",
        lambda reporter: ground_truth_completion(checkpoint, scenes_dir, out, plan, device, reporter),
    )
    result.metrics.update(oracle)
    atomic_write_json(out / "evaluation.json", {**result.metrics, "checkpoint": str(checkpoint)}, indent=2)
    atomic_write_text(out / "evaluation.md", evaluation_markdown(result.metrics))

    val_images = _val_image_paths(scenes_dir, plan.predict_images)
    predicted = timed(
        "predict",
        lambda reporter: predict_images(
            val_images,
            out / "predict",
            PredictSettings(
                checkpoint=checkpoint,
                score_threshold=plan.predict_score_threshold,
                device=device,
                meshes=plan.stage2_kind in MESH_KINDS,
                overlay_scale=plan.overlay_scale,
            ),
            count_callback(reporter, "overlays, masks and meshes of val images", "image"),
        ),
    )
    for record in json.loads(predicted.images_file.read_text())["images"]:
        source = out / "predict" / record["folder"] / "panels.png"
        target = out / "overlays" / f"{record['folder']}.png"
        shutil.copyfile(source, target)
        result.overlays.append(target)
    result.detections_shown = predicted.instances

    atomic_write_text(result.index, index_markdown(result, plan))
    return result


def visible_baseline(dataset: Path, split: str, predictions_file: Path) -> EvaluationResult:
    """The same detections scored with their VISIBLE masks as amodal masks: the no-completion baseline."""
    predictions = load_predictions(predictions_file)
    as_visible = [{**entry, "segmentation": entry["visible_mask"]} for entry in predictions]
    return evaluate_predictions(
        read_dataset(dataset).load_split(split), as_visible, EvaluationSettings(kinds=("amodal",))
    )


def ground_truth_completion(
    checkpoint: Path, dataset: Path, out: Path, plan: DemoPlan, device: str, progress: ProgressReporter = SILENT
) -> tuple[dict[str, dict[str, float]], Path | None, list[Path], list[Path]]:
    """Stage 2 alone on the ground-truth instances of the val split.

    Returns the completion protocol's metrics (``a3d evaluate --protocol completion``) of the
    checkpoint's stage 2 and of the visible-mask baseline, and the files written:
    ``out/summary.png`` (the ``plan.summary_instances`` most occluded instances, one row each:
    input | visible mask | completed amodal mask | ground truth; none without instances), the
    panels of the first ``plan.predict_images`` images in ``out/completion`` and, in
    ``out/meshes``, the reconstructed mesh (OBJ) and turntable (GIF) of the first ``plan.meshes``
    instances at least :data:`MESH_MIN_OCCLUSION` occluded: the 3D prior behind each completion
    (none when stage 2 is a 2D kind, which reconstructs no mesh).
    ``a3d complete`` then completes the ground truth of those first images, handed over as a
    segmenter's visible-mask results (``out/completion/visible.json``), into ``out/complete``.
    ``progress`` receives the phase of completing the val images.
    """
    completer = load_checkpoint_completer(checkpoint, device=device)
    names = AmodalDetectionDataset(dataset, "val").categories.names
    drawn: list[Path] = []
    meshes: list[Path] = []
    most_occluded: list[tuple[float, np.ndarray]] = []

    def draw(image: torch.Tensor, target: dict, completion: dict) -> None:
        pixels = (image.permute(1, 2, 0).cpu() * 255).round().byte().numpy()
        visible, truth = target["masks"].cpu().numpy() > 0, target["amodal_masks"].cpu().numpy() > 0
        completed = completion["amodal_masks"].cpu().numpy() > 0.5
        rates = target["occlusion_rate"].tolist()
        labels = [
            f"{k + 1} {names[int(label) - 1]}, {rate:.0%} hidden"
            for k, (label, rate) in enumerate(zip(target["labels"].tolist(), rates))
        ]
        if len(drawn) < plan.predict_images:
            drawn.append(
                write_png(
                    out / "completion" / f"val_{target['image_id']:05d}.png",
                    instance_figure(pixels, visible, completed, truth, labels),
                )
            )
        for k, rate in enumerate(rates):
            most_occluded.append(
                (
                    rate,
                    instance_row(pixels, visible[k], completed[k], truth[k], f"val {target['image_id']}: {labels[k]}"),
                )
            )
        most_occluded.sort(key=lambda entry: -entry[0])
        del most_occluded[plan.summary_instances :]
        for k, rate in enumerate(rates):
            # 2 files an instance
            if len(meshes) >= 2 * plan.meshes or rate < MESH_MIN_OCCLUSION or "vertices" not in completion:
                continue
            name = f"val_{target['image_id']:05d}_instance_{k:02d}"
            vertices, faces = completion["vertices"][k].cpu(), completion["faces"].cpu()
            meshes.append(write_obj(out / "meshes" / f"{name}.obj", vertices, faces))
            frames = render_turntable(vertices, faces, plan.turntable_frames, plan.turntable_size)
            meshes.append(write_gif(out / "meshes" / f"{name}_turntable.gif", frames))

    settings = EvaluationSettings(kinds=("amodal",))
    completed = evaluate_completion(
        dataset,
        completer,
        "val",
        settings,
        on_image=draw,
        progress=count_callback(progress, "stage 2 on the ground-truth val instances", "image"),
    )
    metrics = {
        "stage2_on_ground_truth": headline_metrics(completed),
        "ground_truth_visible": headline_metrics(evaluate_completion(dataset, VisibleCompleter(), "val", settings)),
    }
    summary = (
        write_png(out / "summary.png", figure_of_rows([row for _, row in most_occluded], ground_truth=True))
        if most_occluded
        else None
    )

    folder = read_dataset(dataset)
    split = folder.load_split("val")
    images = split.images[: plan.predict_images]
    shown = {int(image["id"]) for image in images}
    visible = atomic_write_json(
        out / "completion" / "visible.json",
        {
            "images": [{"id": image["id"], "file_name": image["file_name"]} for image in images],
            "categories": split.categories,
            "annotations": [
                {
                    "image_id": a["image_id"],
                    "category_id": a["category_id"],
                    "score": 1.0,
                    "segmentation": a["visible_mask"],
                    "bbox": a["bbox"],
                }
                for a in split.annotations
                if int(a["image_id"]) in shown and not a.get("iscrowd", 0)
            ],
        },
    )
    complete_images(
        [folder.image_path(image) for image in images],
        visible,
        out / "complete",
        CompleteSettings(
            checkpoint=checkpoint, device=device, meshes=False, masks=False, overlay_scale=plan.overlay_scale
        ),
    )
    return metrics, summary, drawn, meshes


def headline_metrics(result: EvaluationResult) -> dict[str, float]:
    """AP, AP50, AP75 of the amodal masks, mIoU and mIoU_occ (fractions; -1 where not measured)."""
    stats = result.kinds["amodal"].stats
    segments = result.segments
    return {
        "AP": stats["AP"],
        "AP50": stats["AP50"],
        "AP75": stats["AP75"],
        "mIoU": segments.miou if segments else -1.0,
        "mIoU_occ": segments.miou_occ if segments else -1.0,
    }


def evaluation_markdown(metrics: dict[str, dict[str, float]]) -> str:
    """The evaluation table (%), one row per method."""
    columns = ("AP", "AP50", "AP75", "mIoU", "mIoU_occ")
    lines = ["| amodal masks on the val scenes (%) | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    labels = {
        "stage2_on_ground_truth": "stage 2 on ground-truth boxes + visible masks (completion protocol)",
        "ground_truth_visible": "ground-truth visible mask as amodal mask",
        "model": "two-stage network, full pipeline (stage-1 detections)",
        "visible_baseline": "same detections, visible mask as amodal mask",
    }
    for key, label in labels.items():
        if key not in metrics:
            continue
        values = metrics[key]
        lines.append(
            f"| {label} | " + " | ".join("-" if values[c] < 0 else f"{100 * values[c]:.1f}" for c in columns) + " |"
        )
    return "\n".join(lines) + "\n"


def _val_image_paths(scenes_dir: Path, count: int) -> list[Path]:
    folder = read_dataset(scenes_dir)
    return [folder.image_path(record) for record in folder.load_split("val").images[:count]]


def index_markdown(result: DemoResult, plan: DemoPlan) -> str:
    """The demo folder's front page."""
    out = result.out
    timing = "\n".join(
        f"| {name} | {seconds:.0f} | {result.cpu_seconds[name]:.0f} |" for name, seconds in result.seconds.items()
    )
    transferred = ", ".join(f"{name} <- {source}" for name, source in result.transferred.items()) or "none"
    overlays = "\n".join(f"![{path.stem}]({path.relative_to(out).as_posix()})" for path in result.overlays)
    shown = (
        f"{result.detections_shown} detections scored at least {plan.predict_score_threshold} in these images."
        if result.detections_shown
        else f"No detection scored {plan.predict_score_threshold} or more: stage 1, trained from scratch for minutes "
        "on a CPU, is not yet confident about any object. Above, stage 2 completes the ground-truth visible masks."
    )
    summary = (
        ""
        if result.summary is None
        else (
            f"![the most occluded val instances](summary.png)\n\nThe {plan.summary_instances} most occluded val "
            f"instances, completed by stage 2 from their ground-truth box and visible mask: {PANELS_LEGEND}\n"
        )
    )
    completions = "\n".join(f"![{path.stem}]({path.relative_to(out).as_posix()})" for path in result.completions)
    meshes = (
        f"Stage 2 is `{plan.stage2_kind}`, a 2D completer: it reconstructs no meshes. `a3d demo --model a3d` "
        "trains the paper's 3D shape prior instead and exports them here."
        if plan.stage2_kind not in MESH_KINDS
        else f"No val instance is at least {MESH_MIN_OCCLUSION:.0%} occluded."
        if not result.meshes
        else "\n".join(
            f"- [{path.name}]({path.relative_to(out).as_posix()})"
            + (f"\n\n  ![{path.stem}]({path.relative_to(out).as_posix()})" if path.suffix == ".gif" else "")
            for path in result.meshes
        )
    )
    return f"""# a3d demo

The whole two-stage pipeline at a small scale on the built-in data (categories: {", ".join(plan.categories)};
stage 2: `{plan.stage2_kind}`).
Total time: {result.total_seconds:.0f} s.

{summary}
## What stage 2 does, beside what stage 1 detects

{evaluation_markdown(result.metrics)}
The first two rows give stage 2 the ground-truth boxes and visible masks (`a3d evaluate
--protocol completion`, C2F-Seg's setting): they measure stage 2's completion alone,
against the visible masks taken as amodal masks. The last two rows run the whole pipeline from
stage-1 detections, with and without completion. A stage 1 trained from scratch for minutes on a
CPU detects poorly; start it from `--detector-weights` or `--backbone-weights` and train longer
for real use, or hand the visible masks of any segmenter to `a3d complete`.

## 1. Pretraining data (`a3d prepare shapenet`)

![pretraining views](previews/shapenet.png)

## 2. Stage 2 pretrained on the views (`a3d pretrain --model {plan.stage2_kind}`)

Run folder: `runs/pretrain/` (checkpoints, `metrics.jsonl`, `results.json`).

## 3. Multi-object scenes (`a3d prepare scenes`)

![scenes](previews/scenes.png)

## 4. Fine-tuning both stages (`a3d finetune`)

Run folder: `runs/scenes/`. Categories initialised from the prior (fine-tuning <- pretraining): {transferred}.

## 5. Evaluation (`a3d evaluate`)

The table above: `evaluation.json`, `evaluation.md`; the full pipeline's detections are in
`predictions/predictions.json` (COCO results). The completion protocol's rows are
`a3d evaluate --dataset data/scenes --protocol completion --checkpoint runs/scenes/best.pt`
and `... --completer visible`. `complete/` is `a3d complete`'s output for the ground-truth
visible masks in `completion/visible.json`, as any segmenter's masks would be handed over.

Ground-truth instances completed by stage 2, one row each: {PANELS_LEGEND}

{completions}

## 6. Predictions (`a3d predict`)

Stage-1 detections completed by stage 2, one row each (best-scoring first; no ground truth here): {PANELS_LEGEND}
{shown} The whole images with the same masks are `predict/<image>/overlay.png`.

{overlays}

## 7. Meshes (the 3D prior behind the completions)

Occluded val instances (ground-truth box and visible mask) reconstructed by stage 2: the mesh as
OBJ, and a turntable. Each instance's mesh from stage-1 detections is in `predict/<image>/`.

{meshes}

## Timings (seconds)

| step | wall seconds | CPU seconds (all threads) |
|---|---|---|
{timing}
"""
