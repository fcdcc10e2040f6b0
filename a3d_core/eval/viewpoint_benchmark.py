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
   A3D's active parameters; A3D with one camera (the paper's) and A3D with its defaults. Every
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

:func:`run_viewpoint_benchmark` writes ``<out>/report.md``, ``results.json`` and the plots; it
resumes: the prepared data, each finished model and its evaluation are reused, and an
interrupted model continues from its ``last.pt``. ``benchmarks/bm_viewpoints.py`` is its command.
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
from a3d_core.data.shapenet import ShapeNetAmodalDataset, read_shard_manifest
from a3d_core.data.viewpoints import PROTOCOL_SPLITS
from a3d_core.errors import InputError
from a3d_core.eval import charts
from a3d_core.eval.instances import InstanceTable, collect_instances, visible_mask_table
from a3d_core.eval.intervals import Interval, bootstrap_difference, bootstrap_mean
from a3d_core.eval.shape3d import to_data_frame, voxel_iou, voxelize
from a3d_core.eval.viewpoint_diagnostics import DEFAULT_STEPS, align_azimuths, novel_view_ious, viewpoint_errors
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


def _novel_view_targets(data: Path, splits: Sequence[str]) -> dict[tuple[int, float, int], torch.Tensor]:
    targets = {}
    for split in splits:
        dataset = open_split(data, split)
        for i in range(len(dataset)):
            key = (int(dataset.object_index[i]), float(dataset.elevation[i]), int(dataset.view_id[i]))
            targets[key] = dataset[i]["amodal"][0]
    return targets


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
    data: Path,
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
    dataset = open_split(data, "test")
    inputs = torch.stack([dataset[i]["amodal"][0] for i in range(len(dataset))])
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
        from a3d_core.geometry import ico_sphere_template

        template_vertices, template_faces = ico_sphere_template(
            model.settings.template_level, model.settings.template_radius
        )
        shapes = mesh_ious(
            test,
            model.mask_branch.faces.numpy(),
            alignments,
            truths,
            (template_vertices.numpy(), template_faces.numpy()),
            resamples,
            seed,
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
            targets = targets if targets is not None else _novel_view_targets(data, test_splits)
            results["diagnostics"][spec.name] = diagnostics_3d(
                model.cpu(), tables[spec.name], data, test_splits, targets, scale.resamples, settings.seed, truths
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


# ---------------------------------------------------------------------------------- reports
def _cell(interval: dict[str, float]) -> str:
    if interval is None or math.isnan(interval["value"]):
        return "-"
    return f"{interval['value']:.1f} [{interval['low']:.1f}, {interval['high']:.1f}]"


def _signed(interval: dict[str, float]) -> str:
    return f"{interval['value']:+.1f} [{interval['low']:+.1f}, {interval['high']:+.1f}]"


def _verdict(interval: dict[str, float]) -> str:
    if interval["low"] > 0:
        return "ahead"
    if interval["high"] < 0:
        return "behind"
    return "not distinguishable"


SPLIT_MEANING = {
    "test": "unseen objects at training cameras",
    "test_newview": "held-out azimuth wedge and its mirror, at training elevations",
    "test_elevation": "held-out elevations, at training azimuths",
    "test_combination": "held-out (elevation, azimuth) pairs; each elevation and azimuth seen in training",
}


def report_markdown(results: dict[str, Any]) -> str:
    """The benchmark's report: protocol, models, the tables, the diagnostics and what they show."""
    scale, protocol, models = results["scale"], results["protocol"], results["models"]
    splits = list(results["splits"])
    machine = results["machine"]
    lines = [f"# Viewpoint benchmark, scale `{scale['name']}`", ""]
    if results["command"]:
        lines += [f"Command: `{results['command']}`", ""]
    load = results["load_average"]
    lines += [
        f"Machine: {machine['platform']}, {machine['cpus']} CPUs, torch {machine['torch']} with "
        f"{machine['torch_threads']} threads{', ' + machine['cuda'] if machine['cuda'] else ', no GPU'}; "
        f"load average {load['start'][0]:.1f} at the start, "
        f"{load['end'][0]:.1f} at the end; {results['seconds'] / 60:.0f} min in all.",
        "",
    ]
    lines += [
        "## Protocol",
        "",
        f"Built-in shape library, {len(results['categories'])} categories, "
        f"{scale['objects_per_category']} objects each "
        f"(split {scale['split_fractions']} by object), {scale['image_size']}x{scale['image_size']} views framed at "
        f"{DEFAULT_CROP_SCALE}, synthetic occlusion. Training elevations {protocol['elevations']}; Kato azimuth views "
        f"{protocol['view_ids']} (view v is azimuth -15 v degrees; v mirrors (24 - v) mod 24). Held out: views "
        f"{protocol['holdout_views']}, elevations {protocol['holdout_elevations']}, pairs {protocol['holdout_pairs']}. "
        "Train and val objects are seen at the training cameras only; "
        "checkpoints and the best baseline are chosen on val.",
        "",
        "| split | what it holds | cameras | instances | objects |",
        "|---|---|---:|---:|---:|",
    ]
    first = next(iter(models))
    for split in splits:
        metrics = results["splits"][split][first]
        lines.append(
            f"| {split} | {SPLIT_MEANING.get(split, '')} | {len(protocol['cameras'].get(split, []))} | "
            f"{metrics['instances']} | {metrics['objects']} |"
        )
    lines += [
        "",
        "## Models",
        "",
        f"Every trained model: flips per object, Adam {scale['lr']:g}, batch {scale['batch_size']}, "
        f"{scale['instances']:,} "
        "training instances (a cross-view step counts both views), checkpoint chosen on val mIoU.",
        "",
        "| model | what it is | active parameters | instances seen | steps | train time (s) | val mIoU |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, record in models.items():
        lines.append(
            f"| {name} | {record['description']} | {record['parameters']:,} | {record['instances']:,} "
            f"| {record['steps']:,} "
            f"| {record['seconds']:.0f} | {_cell(record['val']['miou'])} |"
        )
    lines += [
        "",
        "## mIoU (%), mean over categories, 95% intervals over test objects",
        "",
        "| model | " + " | ".join(splits) + " |",
        "|---|" + "---:|" * len(splits),
    ]
    for name in models:
        lines.append(f"| {name} | " + " | ".join(_cell(results["splits"][s][name]["miou"]) for s in splits) + " |")
    lines += [
        "",
        "## mIoU of the hidden part (%): prediction minus visible against amodal minus visible",
        "",
        "| model | " + " | ".join(splits) + " |",
        "|---|" + "---:|" * len(splits),
    ]
    for name in models:
        lines.append(
            f"| {name} | " + " | ".join(_cell(results["splits"][s][name]["hidden_miou"]) for s in splits) + " |"
        )
    if results["differences"]:
        best = results["best_baseline"]
        lines += [
            "",
            f"## A3D minus each baseline (mIoU points, paired 95% intervals); best baseline on val: **{best}**",
            "",
            "| model | baseline | " + " | ".join(splits) + " |",
            "|---|---|" + "---:|" * len(splits),
        ]
        for name, opponents in results["differences"].items():
            for opponent, by_split in opponents.items():
                marker = " (best)" if opponent == best else ""
                lines.append(
                    f"| {name} | {opponent}{marker} | "
                    + " | ".join(_signed(by_split[s]["miou"]) for s in splits)
                    + " |"
                )
    for name, diagnostics in results["diagnostics"].items():
        lines += [
            "",
            f"## {name}: viewpoint error after the per-category alignment fitted on val",
            "",
            "| split | median azimuth error | median elevation error | median angle | within 30 degrees |",
            "|---|---:|---:|---:|---:|",
        ]
        for split, summary in diagnostics["viewpoint_errors"].items():
            lines.append(
                f"| {split} | {summary['median_azimuth_error']:.0f} | {summary['median_elevation_error']:.0f} | "
                f"{summary['median_angle_error']:.0f} | {100 * summary['share_within']:.0f}% |"
            )
        shapes = diagnostics.get("shapes_3d")
        if shapes:
            categories = results["categories"]
            lines += [
                "",
                f"## {name}: meshes judged in 3D, voxel IoU (%) at 32^3 with the true mesh, after the val alignment",
                "",
                f"{shapes['meshes']} reconstructions ({MESHES_PER_OBJECT} `test` views of each object): mesh "
                f"{_cell(shapes['mesh'])}, the template sphere {_cell(shapes['sphere'])}.",
                "",
                "| category | mesh | sphere |",
                "|---|---:|---:|",
            ]
            for index, row in sorted(shapes["per_category"].items(), key=lambda item: int(item[0])):
                lines.append(f"| {categories[int(index)]} | {row['mesh']:.1f} | {row['sphere']:.1f} |")
        lines += [
            "",
            f"## {name}: novel-view IoU (%), the mesh of a `test` view rendered at another view of its object",
            "",
            "| step | pairs | mesh | reuse the input view's mask | difference |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, row in diagnostics["novel_view"].items():
            lines.append(
                f"| {label} | {row['pairs']} | {_cell(row['mesh'])} | {_cell(row['reuse_input_mask'])} "
                f"| {_signed(row['difference'])} |"
            )
    lines += ["", "## Per category, mIoU (%)", ""]
    for split in splits:
        lines += [f"**{split}**", "", "| category | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
        for category in results["categories"]:
            cells = [results["splits"][split][m]["per_category"].get(category) for m in models]
            lines.append(
                f"| {category} | " + " | ".join("-" if c is None else f"{c['value']:.1f}" for c in cells) + " |"
            )
        lines.append("")
    lines += [
        "## What the table shows",
        "",
        *what_it_shows(results),
        "",
        "![examples](examples.png)",
        "",
        f"Above: the most occluded held-out instances ({EXAMPLES_PER_SPLIT} categories a split), completed by the best "
        "baseline and by A3D; each row: the input, the visible mask, the predicted amodal mask with its completed "
        "part in orange, the ground truth.",
        "",
        "Plots: " + ", ".join(f"[{p}]({p})" for p in plot_names(results)),
        "",
    ]
    return "\n".join(lines)


def what_it_shows(results: dict[str, Any]) -> list[str]:
    """Plain sentences, generated from the numbers, whichever way they come out."""
    sentences = []
    differences = results["differences"].get(MAIN_MODEL)
    if differences:
        best = results["best_baseline"]
        for split, by_metric in differences[best].items():
            interval = by_metric["miou"]
            sentences.append(
                f"- {split}: A3D minus {best} = {_signed(interval)} mIoU points: A3D is {_verdict(interval)}."
            )
    for name, diagnostics in results["diagnostics"].items():
        for label, row in diagnostics["novel_view"].items():
            sentences.append(
                f"- {name}, novel view at {label}: the mesh gives {row['mesh']['value']:.1f} IoU against "
                f"{row['reuse_input_mask']['value']:.1f} for reusing the input view's mask: the mesh is "
                f"{_verdict(row['difference'])}."
            )
    return sentences


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
        rates = np.asarray([float(dataset[i]["occlusion_rate"]) for i in range(len(dataset))])
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


def plot_names(results: dict[str, Any]) -> list[str]:
    names = [f"per_category_{split}.png" for split in results["splits"]]
    if results["diagnostics"]:
        names += ["viewpoint_error.png", "novel_view.png"]
    return names


def _triple(interval: dict[str, float] | None) -> tuple[float, float, float]:
    """``(value, low, high)`` of an interval, NaNs when there is none (a chart leaves it out)."""
    if interval is None:
        return (math.nan, math.nan, math.nan)
    return (interval["value"], interval["low"], interval["high"])


def write_plots(results: dict[str, Any], out: Path) -> None:
    """Per-category bars with intervals per split; viewpoint-error histogram; novel-view IoU against the step."""
    shown = [
        m for m in ("visible mask", results.get("best_baseline"), "A3D, 1 camera", MAIN_MODEL) if m in results["models"]
    ]
    for split, by_model in results["splits"].items():
        series = {m: [_triple(by_model[m]["per_category"].get(c)) for c in results["categories"]] for m in shown}
        atomic_write_bytes(
            out / f"per_category_{split}.png",
            charts.grouped_bars(f"mIoU per category, {split}", results["categories"], series, y_label="IoU (%)"),
        )
    if not results["diagnostics"]:
        return
    samples = {
        name: np.concatenate([np.asarray(v) for v in d["angle_errors"].values()])
        for name, d in results["diagnostics"].items()
    }
    atomic_write_bytes(
        out / "viewpoint_error.png",
        charts.histogram("viewpoint error, all test splits", samples, np.arange(0, 181, 10), "degrees"),
    )
    labels = [step.label for step in DEFAULT_STEPS]
    series = {
        f"{name}: mesh": [_triple(d["novel_view"].get(label, {}).get("mesh")) for label in labels]
        for name, d in results["diagnostics"].items()
    }
    reference = next(iter(results["diagnostics"].values()))["novel_view"]
    series["reuse input mask"] = [_triple(reference.get(label, {}).get("reuse_input_mask")) for label in labels]
    atomic_write_bytes(
        out / "novel_view.png", charts.lines("novel-view IoU against the step", labels, series, y_label="IoU (%)")
    )
