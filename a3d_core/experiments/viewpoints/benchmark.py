"""The viewpoint benchmark: does a 3D shape prior complete objects at viewpoints training never saw?

The paper's central claim (sections 1 and 5): 2D amodal methods fail on viewpoints missing from
their training set, a 3D shape prior generalises to them. This benchmark tests it on the built-in
shape library, with every model trained and evaluated by the same code on the same splits:

1. **Data**: ``a3d prepare shapenet`` with a viewpoint protocol (:mod:`a3d_core.data.viewpoints`):
   training elevations, a held-out mirror-closed azimuth wedge (``test_newview``), held-out
   elevations (``test_elevation``) and unseen (elevation, azimuth) pairs (``test_combination``);
   ``val`` and ``test`` stay on training cameras.
2. **Models** (:data:`MODELS`): the visible mask; a training-free retrieval (ShapeDict's simplest
   form); ShapeDict (K-means atoms + edge refine); the 2D decoder; a U-Net 2D decoder of about
   A3D's active parameters; A3D with one camera (the paper's), with its defaults, with scored hypotheses,
   one camera with the view cycle (:mod:`a3d_core.model.view_cycle`), and that with a U-Net refine
   or with the parts template (:func:`a3d_core.geometry.parts_template`). Every
   trained model gets the same flip augmentation and sees the same number of training instances
   (a cross-view step sees two views of each object: both count), and its checkpoint is chosen on
   ``val`` mIoU.
3. **Metrics** on every test split: mIoU per category and its mean over categories, mIoU of the
   hidden part, 95% bootstrap intervals over test objects, and A3D minus the best baseline (the
   baseline chosen on ``val``) with its paired interval (:mod:`a3d_core.eval.intervals`).
4. **3D diagnostics** of the A3D models (:mod:`a3d_core.eval.viewpoint_diagnostics`): viewpoint
   error after the per-category alignment fitted on ``val``, novel-view IoU against reusing the
   input view's mask, and the meshes' voxel IoU with the true meshes (:mod:`a3d_core.eval.shape3d`)
   beside the template sphere's.

:func:`run_viewpoint_benchmark` writes ``<out>/report.md``, ``results.json`` and the plots
(:mod:`a3d_core.experiments.viewpoints.report`); it resumes: the prepared data, each finished model and its
evaluation are reused, and an interrupted model continues from its ``last.pt``.
``benchmarks/bm_viewpoints.py`` is its command.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from a3d_core.boxes import DEFAULT_CROP_SCALE
from a3d_core.data.framing import FramedViews
from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
from a3d_core.data.shapenet import ShapeNetAmodalDataset, load_split_arrays, read_shard_manifest
from a3d_core.data.viewpoints import PROTOCOL_SPLITS
from a3d_core.errors import InputError
from a3d_core.eval.instances import InstanceTable, collect_instances, visible_mask_table
from a3d_core.eval.intervals import Interval, bootstrap_difference, bootstrap_mean
from a3d_core.eval.shape3d import to_data_frame, voxel_iou, voxelize
from a3d_core.eval.viewpoint_diagnostics import align_azimuths, novel_view_ious, viewpoint_errors
from a3d_core.experiments.viewpoints.report import report_markdown, write_plots
from a3d_core.geometry import ico_sphere_template
from a3d_core.io.atomic import atomic_write_bytes, atomic_write_json
from a3d_core.model.asm import ASMSettings, build_stage2, load_stage2_from_checkpoint
from a3d_core.model.shapedict import ShapeDictSettings
from a3d_core.runtime import resolve_device
from a3d_core.train.loop import TrainSettings
from a3d_core.train.pretrain import PretrainSettings, fit_to_training_masks, pretrain

Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchmarkScale:
    """The data, the training budget and the sizes of one scale (:data:`SCALES`).

    ``instances`` is what every trained model sees: a model with cross-view consistency takes
    ``instances / (2 * batch_size)`` steps, the others ``instances / batch_size``.
    """

    name: str
    image_size: int
    objects_per_category: int
    views: int
    elevations: tuple[float, ...]
    holdout_views: tuple[int, int]
    holdout_elevations: tuple[float, ...]
    holdout_pairs: tuple[tuple[float, int], ...]
    instances: int
    batch_size: int
    lr: float
    template_level: int
    validations: int
    val_instances: int
    atoms_per_category: int
    categories: tuple[str, ...] | None = None
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    resamples: int = 2000


_PROTOCOL = dict(
    elevations=(0.0, 30.0),
    holdout_views=(4, 8),
    holdout_elevations=(60.0, -15.0),
    holdout_pairs=((0.0, 10), (0.0, 11), (30.0, 1), (30.0, 2)),
)
SCALES = {
    "tiny": BenchmarkScale(
        "tiny",
        image_size=16,
        objects_per_category=3,
        views=8,
        elevations=(0.0, 30.0),
        holdout_views=(3, 3),
        holdout_elevations=(60.0,),
        holdout_pairs=((0.0, 6),),
        instances=32,
        batch_size=8,
        lr=1e-3,
        template_level=1,
        validations=1,
        val_instances=8,
        atoms_per_category=2,
        categories=("car", "table"),
        split_fractions=(0.34, 0.33, 0.33),
        resamples=100,
    ),
    "cpu": BenchmarkScale(
        "cpu",
        image_size=32,
        objects_per_category=10,
        views=24,
        **_PROTOCOL,
        instances=32_000,
        batch_size=16,
        lr=1e-3,
        template_level=2,
        validations=8,
        val_instances=256,
        atoms_per_category=64,
    ),
    "gpu": BenchmarkScale(
        "gpu",
        image_size=64,
        objects_per_category=12,
        views=24,
        **_PROTOCOL,
        instances=1_280_000,
        batch_size=64,
        lr=1e-4,
        template_level=3,
        validations=20,
        val_instances=512,
        atoms_per_category=128,
    ),
}
"""tiny: runs in a test; cpu: about an hour on the 2-core machine; gpu: the paper's 64x64, 642
vertices, batch 64 and Adam 1e-4 (20,000 steps of the 2D models, 10,000 cross-view steps)."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of the benchmark: its name, its stage-2 kind and how it is trained."""

    name: str
    kind: str
    description: str
    trained: bool = True
    cross_view: bool = False
    azimuth_hypotheses: int = 4
    hypothesis_selection: str = "render"
    view_cycle: float = 0.0
    refine: str = "edge"
    deformation: float = 0.0
    template: str = "sphere"
    instance_warmup: float = 0.0

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    @property
    def is_3d(self) -> bool:
        return self.kind.startswith("a3d")


VISIBLE = ModelSpec("visible mask", "visible", "the visible mask itself as the amodal mask", trained=False)
RETRIEVAL = ModelSpec(
    "retrieval",
    "shapedict-no-refine",
    "training-free: the training amodal mask (or its mirror) of any "
    "category that best overlaps the visible mask, united with it",
    trained=False,
)
MODELS = (
    VISIBLE,
    RETRIEVAL,
    ModelSpec(
        "ShapeDict", "shapedict", "K-means atoms per category retrieved by the visible mask, then the edge refine"
    ),
    ModelSpec("2D", "2d", "the 2D mask decoder (fc to S/8, three upsampling stages), then the edge refine"),
    ModelSpec("U-Net", "2d-unet", "a U-Net decoder with skips, about A3D's active parameters, then the edge refine"),
    ModelSpec(
        "A3D, 1 camera",
        "a3d",
        "mesh + viewpoint + renderer + refine, the paper's single camera, symmetric meshes, cross-view",
        cross_view=True,
        azimuth_hypotheses=1,
    ),
    ModelSpec("A3D", "a3d", "a3d's defaults: 4 azimuth hypotheses, symmetric meshes, cross-view", cross_view=True),
    ModelSpec(
        "A3D, scored",
        "a3d",
        "A3D whose viewpoint estimator scores its 4 hypotheses; one rendered in evaluation",
        cross_view=True,
        hypothesis_selection="scores",
    ),
    ModelSpec(
        "A3D, 1 camera, view cycle",
        "a3d",
        "A3D, 1 camera, plus the view cycle: meshes rendered at random cameras, re-encoded, must give back "
        "camera and mesh",
        cross_view=True,
        azimuth_hypotheses=1,
        view_cycle=1.0,
    ),
    ModelSpec(
        "A3D, 1 camera, view cycle, U-Net refine",
        "a3d",
        "A3D, 1 camera, view cycle, with a small U-Net in place of the edge refine (about the U-Net baseline's "
        "active parameters)",
        cross_view=True,
        azimuth_hypotheses=1,
        view_cycle=1.0,
        refine="unet",
    ),
    ModelSpec(
        "A3D, 1 camera, view cycle, parts template",
        "a3d",
        "A3D, 1 camera, view cycle, deforming eight overlapping spheres that can come apart (a topology-aware "
        "template) instead of the paper's one sphere",
        cross_view=True,
        azimuth_hypotheses=1,
        view_cycle=1.0,
        template="parts",
    ),
)
BASELINES = ("retrieval", "ShapeDict", "2D", "U-Net")
"""The 2D baselines, of which the best on val is A3D's opponent."""
MAIN_MODEL = "A3D"


@dataclass
class BenchmarkSettings:
    """scale: a :data:`SCALES` name or a :class:`BenchmarkScale`; out: the benchmark folder;
    models: the names or slugs (``a3d-1-camera``) of :data:`MODELS` to run (all by default);
    seed; device."""

    scale: str | BenchmarkScale
    out: Path
    models: Sequence[str] | None = None
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if isinstance(self.scale, str):
            if self.scale not in SCALES:
                raise InputError(f"--scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
            self.scale = SCALES[self.scale]
        known = {m.name for m in MODELS} | {m.slug for m in MODELS}
        unknown = sorted(set(self.models or ()) - known)
        if unknown:
            raise InputError(f"unknown models {unknown} (known: {', '.join(m.slug for m in MODELS)})")

    @property
    def specs(self) -> list[ModelSpec]:
        return [m for m in MODELS if self.models is None or {m.name, m.slug} & set(self.models)]


# ------------------------------------------------------------------------------------- data
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


# ----------------------------------------------------------------------------------- models
def training_steps(spec: ModelSpec, scale: BenchmarkScale) -> int:
    """Steps that make ``spec`` see ``scale.instances`` training instances."""
    per_step = scale.batch_size * (2 if spec.cross_view else 1)
    return max(1, math.ceil(scale.instances / per_step))


def train_model(
    spec: ModelSpec, scale: BenchmarkScale, data: Path, run: Path, seed: int, device: str, log: Log
) -> dict[str, Any]:
    """Train ``spec`` (resuming an interrupted run) and return its record (``model.json``)."""
    record_path = run / "model.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
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
    settings = PretrainSettings(
        data=data,
        out=run,
        model=spec.kind,
        train=train_settings,
        cross_view=spec.cross_view,
        template_level=scale.template_level,
        azimuth_hypotheses=spec.azimuth_hypotheses,
        hypothesis_selection=spec.hypothesis_selection,
        shapedict_atoms=scale.atoms_per_category,
        flip=True,
        view_cycle=spec.view_cycle,
        refine=spec.refine,
        deformation=spec.deformation,
        template=spec.template,
        instance_warmup=spec.instance_warmup,
        device=device,
        resume=(run / "last.pt").is_file(),
        val_instances=scale.val_instances,
        evaluate_tests=False,
    )
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
    }
    atomic_write_json(record_path, record, indent=2)
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
):
    """The network of ``spec``: its selected checkpoint, or (untrained models) built and fitted here."""
    if spec.trained:
        return load_stage2_from_checkpoint(record["checkpoint"])
    settings = ASMSettings(
        image_size=scale.image_size,
        input_framing=DEFAULT_CROP_SCALE,
        shapedict=ShapeDictSettings(atoms_per_category=0, mirrored=True, retrieval="all"),
    )
    model = build_stage2(spec.kind, category_names, settings)
    fit_to_training_masks(model, open_split(data, "train"), seed)
    return model


# ------------------------------------------------------------------------------- evaluation
TABLE_FIELDS = [f.name for f in dataclasses.fields(InstanceTable)]


def _save_table(path: Path, table: InstanceTable) -> None:
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: value for name in TABLE_FIELDS if (value := getattr(table, name)) is not None})
    atomic_write_bytes(path, buffer.getvalue())


def _load_table(path: Path) -> InstanceTable:
    with np.load(path, allow_pickle=False) as archive:
        return InstanceTable(**{name: archive[name] for name in archive.files})


def evaluate_model(
    spec: ModelSpec, model, data: Path, splits: Sequence[str], folder: Path, device: torch.device
) -> dict[str, InstanceTable]:
    """``split -> InstanceTable`` of ``model`` on ``splits`` (cached under ``folder``)."""
    tables = {}
    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        path = folder / f"{split}.npz"
        if not path.is_file():
            dataset = open_split(data, split)
            table = (
                visible_mask_table(dataset)
                if model is None
                else collect_instances(model, dataset, device=device, keep_meshes=spec.is_3d and split == "test")
            )
            _save_table(path, table)
        tables[split] = _load_table(path)
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


def _difference(
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


def reference_sphere(model) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(V, 3)`` and faces ``(F, 3)`` of the paper's ico-sphere at ``model``'s template
    level: the untrained template every model's voxel IoU is set beside (whatever its own template)."""
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


def diagnostics_3d(
    model,
    tables: dict[str, InstanceTable],
    test_splits: Sequence[str],
    targets: dict,
    resamples: int,
    seed: int,
    truths: dict[int, Any] | None = None,
) -> dict[str, Any]:
    """Viewpoint errors (aligned on val) per test split and novel-view IoU from the ``test`` inputs.

    A category val lacks takes the alignment fitted on all of val: nothing is fitted on a test split.
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
    for result in novel_view_ious(test, inputs, targets, model.mask_branch.render, alignments, DEFAULT_CROP_SCALE):
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
            test, model.mask_branch.faces.numpy(), alignments, truths, reference_sphere(model), resamples, seed
        )
    return {
        "shapes_3d": shapes,
        "alignments": {int(c): dataclasses.asdict(a) for c, a in alignments.items()},
        "viewpoint_errors": {split: e.summary() for split, e in errors.items()},
        "angle_errors": {split: e.angle.tolist() for split, e in errors.items()},
        "novel_view": novel,
    }


# ----------------------------------------------------------------------------------- runner
def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_viewpoint_benchmark(settings: BenchmarkSettings, log: Log = print, command: str = "") -> dict[str, Any]:
    """Run the benchmark into ``settings.out``; see the module docstring. Returns ``results.json``'s content."""
    scale: BenchmarkScale = settings.scale  # type: ignore[assignment]
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    started, load_before = time.perf_counter(), os.getloadavg()
    data = prepare_data(scale, out / "data", settings.seed, log)
    manifest = read_shard_manifest(data)
    category_names = list(manifest["categories"])
    test_splits = [s for s in ("test", *PROTOCOL_SPLITS) if s in manifest["shards"]]
    targets = None
    truths = true_meshes(manifest)
    results: dict[str, Any] = {
        "scale": dataclasses.asdict(scale),
        "command": command,
        "machine": _machine(),
        "protocol": manifest["viewpoint_protocol"],
        "main_model": MAIN_MODEL,
        "meshes_per_object": MESHES_PER_OBJECT,
        "examples_per_split": EXAMPLES_PER_SPLIT,
        "categories": category_names,
        "models": {},
        "splits": {},
        "differences": {},
        "diagnostics": {},
    }
    tables: dict[str, dict[str, InstanceTable]] = {}
    loaded: dict[str, Any] = {}
    for spec in settings.specs:
        run = out / "runs" / spec.slug
        record = {"name": spec.name, "kind": spec.kind, "instances": 0, "seconds": 0.0, "steps": 0}
        if spec.trained:
            record = train_model(spec, scale, data, run, settings.seed, settings.device, log)
        model = None if spec.kind == "visible" else load_model(spec, record, data, category_names, scale, settings.seed)
        device = resolve_device(settings.device)
        if model is not None:
            model.to(device)
        loaded[spec.name] = model
        record.update(
            description=spec.description,
            parameters=model.active_parameter_count() if model is not None and spec.trained else 0,
        )
        log(f"evaluate {spec.name}")
        tables[spec.name] = evaluate_model(spec, model, data, ["val", *test_splits], run / "tables", device)
        record["val"] = split_metrics(tables[spec.name]["val"], category_names, scale.resamples, settings.seed)
        results["models"][spec.name] = record
        for split in test_splits:
            results["splits"].setdefault(split, {})[spec.name] = split_metrics(
                tables[spec.name][split], category_names, scale.resamples, settings.seed
            )
        if spec.is_3d:
            targets = targets if targets is not None else novel_view_targets(data, test_splits)
            results["diagnostics"][spec.name] = diagnostics_3d(
                model.cpu(), tables[spec.name], test_splits, targets, scale.resamples, settings.seed, truths
            )

    baselines = [name for name in BASELINES if name in results["models"]]
    if baselines:
        best = max(baselines, key=lambda name: results["models"][name]["val"]["miou"]["value"])
        results["best_baseline"] = best
        for name in (spec.name for spec in settings.specs if spec.is_3d):
            results["differences"][name] = {
                opponent: {
                    split: {
                        metric: _difference(
                            tables[name][split], tables[opponent][split], field_name, scale.resamples, settings.seed
                        )
                        for metric, field_name in (("miou", "iou"), ("hidden_miou", "hidden_iou"))
                    }
                    for split in test_splits
                }
                for opponent in baselines
            }
    if results.get("best_baseline") and MAIN_MODEL in loaded:
        shown = {name: loaded[name] for name in (results["best_baseline"], MAIN_MODEL)}
        atomic_write_bytes(
            out / "examples.png", example_figure(data, shown, [s for s in test_splits if s != "test"], device)
        )
    results["seconds"] = time.perf_counter() - started
    results["load_average"] = {"start": load_before, "end": os.getloadavg()}
    atomic_write_json(out / "results.json", results, indent=1)
    write_plots(results, out)
    atomic_write_bytes(out / "report.md", report_markdown(results).encode())
    log(f"report: {out / 'report.md'} ({results['seconds']:.0f} s)")
    return results


EXAMPLES_PER_SPLIT = 2
EXAMPLE_MIN_OCCLUSION = 0.4


def example_figure(data: Path, models: dict[str, Any], splits: Sequence[str], device: torch.device) -> bytes:
    """Panels (input | visible | predicted amodal, its completed part in orange | ground truth), one
    row per model, for the most occluded instance of the first categories of each held-out split."""
    import imageio.v3 as iio

    from a3d_core.io.panels import figure_of_rows, instance_row

    rows = []
    for split in splits:
        dataset = open_split(data, split)
        rates = load_split_arrays(data, split, ["occlusion_rate"])[1]["occlusion_rate"]  # the items' order, unframed
        picks, categories = [], set()
        for i in np.argsort(-rates, kind="stable"):
            category = int(dataset.category_index[i])
            if category not in categories and rates[i] >= EXAMPLE_MIN_OCCLUSION:
                picks.append(int(i))
                categories.add(category)
            if len(picks) == EXAMPLES_PER_SPLIT:
                break
        if not picks:
            continue
        items = [dataset[i] for i in picks]
        batch = {key: torch.stack([item[key] for item in items]).to(device) for key in ("rgb", "visible", "amodal")}
        for k, item in enumerate(items):
            pixels = (item["rgb"].permute(1, 2, 0) * 255).round().byte().numpy()
            name = dataset.categories[int(dataset.category_index[picks[k]])]
            for model_name, model in models.items():
                with torch.no_grad():
                    predicted = (
                        model.eval()({key: value[k : k + 1] for key, value in batch.items()})["amodal_mask"][0]
                        .cpu()
                        .numpy()
                    )
                rows.append(
                    instance_row(
                        pixels,
                        item["visible"][0].numpy(),
                        predicted,
                        item["amodal"][0].numpy(),
                        f"{split} {name}: {model_name}",
                    )
                )
    if not rows:
        return iio.imwrite("<bytes>", np.zeros((8, 8, 3), np.uint8), extension=".png")
    return iio.imwrite("<bytes>", figure_of_rows(rows, ground_truth=True), extension=".png")
