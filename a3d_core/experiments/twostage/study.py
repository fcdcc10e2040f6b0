"""Which stage 2 the two-stage network should have, chosen on val in the demo's setting.

The viewpoint benchmark scores completers on single views of one object; a3d's defaults
(``a3d pretrain``, ``a3d finetune``, ``a3d demo``: :data:`~a3d_core.model.asm.DEFAULT_KIND`) are
for the two-stage network (paper 3.1, 3.7), where stage 2 is pretrained on the built-in views and
then fine-tuned with stage 1 on multi-object scenes, cropping instances from boxes. This study
trains each candidate kind exactly as ``a3d demo`` does (:class:`~a3d_core.pipelines.demo.DemoPlan`:
the same data, steps, learning rates and checkpoint rule; only ``stage2_kind`` differs), with
several training seeds, and scores it two ways:

- **completion** (``a3d evaluate --protocol completion``, C2F-Seg's setting): stage 2 on the
  ground-truth boxes and visible masks; mIoU and mIoU_occ (mean over instances) with 95%
  intervals over images and seeds, paired differences between kinds, and the completion AP;
- **the full pipeline**: amodal AP and mIoU from stage-1 detections (a stage 1 trained for minutes
  from scratch: per-seed values, no interval).

The kind is chosen by its mean completion mIoU on the **val** scenes (the demo's scenes, more of
them). The **test** scenes are scored once per model: ``a3d prepare scenes`` with another seed,
whose objects (seeded by it) neither pretraining nor fine-tuning saw. Data, trained runs and
scores are cached under ``out`` with their provenance (:mod:`a3d_core.experiments.viewpoints.provenance`):
a rerun reuses what the same code and settings made and redoes (or refuses) the rest.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from a3d_core.data.prepare_scenes import prepare_scenes
from a3d_core.data.prepare_shapenet import prepare_shapenet
from a3d_core.eval.evaluate import EvaluationSettings
from a3d_core.eval.instances import CompletedInstances
from a3d_core.eval.intervals import DEFAULT_RESAMPLES
from a3d_core.experiments.modal.evaluation import Scores, paired_difference, set_metrics
from a3d_core.experiments.twostage.report import report_markdown
from a3d_core.experiments.twostage.specs import SPLITS, VISIBLE
from a3d_core.experiments.viewpoints.provenance import (
    RUN_RECORD,
    RUN_STARTED,
    check_stale,
    code_fingerprint,
    finished_run,
    git_state,
    machine,
    provenance,
    read_provenance,
    stale_reason,
)
from a3d_core.io.atomic import atomic_write_json, atomic_write_text
from a3d_core.model.asm import KINDS
from a3d_core.pipelines.completers import VisibleCompleter, load_checkpoint_completer
from a3d_core.pipelines.demo import FULL, DemoPlan, headline_metrics, visible_baseline
from a3d_core.pipelines.evaluate import evaluate_checkpoint, evaluate_completion
from a3d_core.pipelines.predict import PredictSettings
from a3d_core.train.finetune import finetune
from a3d_core.train.pretrain import pretrain

Log = Callable[[str], None]


@dataclass(frozen=True)
class StudySettings:
    """What the study trains and scores.

    Attributes:
        out: the study folder (``data/``, ``runs/<kind>/seed-<k>/``, ``results.json``, ``report.md``).
        kinds: the candidate stage-2 kinds (:data:`~a3d_core.model.asm.KINDS`).
        seeds: training seeds per kind (0, 1, ...); the data is the same for every run.
        plan: the demo's plan every run follows (``stage2_kind`` set per kind, ``val_scenes`` below).
        val_scenes, test_scenes: scenes in the val split (checkpoints and the kind are chosen on
            them) and in the test split.
        data_seed, test_seed: ``a3d prepare`` seeds of the training and val data and of the test
            scenes (another seed: other objects).
        device: where training and evaluation run.
        stale: ``redo`` or ``refuse`` what other code or settings cached.
        resamples: bootstrap replicates of each interval.
    """

    out: Path
    kinds: tuple[str, ...] = ("a3d", "2d-unet")
    seeds: int = 3
    plan: DemoPlan = FULL
    val_scenes: int = 48
    test_scenes: int = 96
    data_seed: int = 0
    test_seed: int = 1
    device: str = "cpu"
    stale: str = "redo"
    resamples: int = DEFAULT_RESAMPLES

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be some of {', '.join(KINDS)}, got {', '.join(self.kinds) or 'none'}")
        if self.seeds < 1 or self.val_scenes < 1 or self.test_scenes < 1:
            raise ValueError("seeds, val_scenes and test_scenes must be at least 1")
        if self.data_seed == self.test_seed:
            raise ValueError("the test scenes need another seed than the training data (other objects)")

    def run_plan(self, kind: str) -> DemoPlan:
        return replace(self.plan, stage2_kind=kind, val_scenes=self.val_scenes)


@dataclass(frozen=True)
class StudyData:
    """The prepared folders: pretraining views, scenes (train, val) and test scenes (their val split)."""

    shapenet: Path
    scenes: Path
    test_scenes: Path
    provenance: dict[str, Any] = field(default_factory=dict)

    def scenes_of(self, split: str) -> Path:
        return self.scenes if split == "val" else self.test_scenes


def prepare_data(settings: StudySettings, log: Log) -> StudyData:
    """The study's three datasets under ``out/data``, prepared once and reused while their record
    matches the code and the recipe."""
    root = settings.out / "data"
    data_plan = replace(settings.plan, val_scenes=settings.val_scenes)
    test_plan = replace(settings.plan, train_scenes=1, val_scenes=settings.test_scenes)
    recipe = {
        "plan": {key: value for key, value in asdict(data_plan).items() if key != "stage2_kind"},
        "test_scenes": settings.test_scenes,
        "data_seed": settings.data_seed,
        "test_seed": settings.test_seed,
    }
    current = provenance(recipe)
    data = StudyData(root / "shapenet", root / "scenes", root / "scenes-test", current)
    record = root / "provenance.json"
    reason = stale_reason(read_provenance(record), current)
    if record.is_file() and not check_stale("data", root, reason, settings.stale):
        log(f"data: reusing {root}")
        return data
    shutil.rmtree(root, ignore_errors=True)
    log(f"data: preparing {root}")
    prepare_shapenet(data_plan.shapenet_config(data.shapenet, settings.data_seed))
    prepare_scenes(data_plan.scenes_request(data.scenes, settings.data_seed))
    # The test scenes' train split (one image) is never read: only their val split is scored.
    prepare_scenes(test_plan.scenes_request(data.test_scenes, settings.test_seed))
    atomic_write_json(record, {"provenance": current}, indent=2)
    return data


def train_run(settings: StudySettings, data: StudyData, kind: str, seed: int, log: Log) -> dict[str, Any]:
    """One kind and seed trained as the demo trains it (pretrain, then finetune); its record
    (``model.json``), reused when the same code and settings made it."""
    run = settings.out / "runs" / kind / f"seed-{seed}"
    plan = settings.run_plan(kind)
    current = provenance({"kind": kind, "seed": seed, "plan": asdict(plan), "data": data.provenance})
    record = finished_run(f"{kind}, seed {seed}", run, current, settings.stale, log)
    if record is not None:
        return record
    shutil.rmtree(run, ignore_errors=True)  # an interrupted run starts again: a run takes minutes
    run.mkdir(parents=True)
    atomic_write_json(run / RUN_STARTED, {"provenance": current}, indent=2)
    log(f"train {kind}, seed {seed}: pretrain {plan.pretrain_steps} steps, finetune {plan.finetune_steps} steps")
    started = time.perf_counter()
    pretrained = pretrain(plan.pretrain_settings(data.shapenet, run / "pretrain", seed, settings.device))
    middle = time.perf_counter()
    tuned = finetune(
        plan.finetune_settings(data.scenes, run / "finetune", pretrained.evaluated_checkpoint, seed, settings.device)
    )
    checkpoint = tuned.training.best_checkpoint or tuned.training.last_checkpoint
    record = {
        "kind": kind,
        "seed": seed,
        "pretrain_seconds": middle - started,
        "finetune_seconds": time.perf_counter() - middle,
        "best_step": tuned.training.best_step,
        "val_ap": tuned.training.best_metric,
        "checkpoint": str(checkpoint),
        "provenance": current,
    }
    atomic_write_json(run / RUN_RECORD, record, indent=2)
    log(f"train {kind}, seed {seed}: done in {time.perf_counter() - started:.0f} s")
    return record


def evaluate_run(
    record: dict[str, Any] | None, data: StudyData, folder: Path, device: str
) -> dict[str, tuple[Scores, dict[str, Any]]]:
    """``split -> (completion Scores, headline metrics)`` of one run (``record``; ``None``: the
    visible mask), cached under ``folder`` with the provenance of the code and the run."""
    folder.mkdir(parents=True, exist_ok=True)
    current = provenance({"trained_by": None if record is None else record["provenance"], "data": data.provenance})
    if stale_reason(read_provenance(folder / "provenance.json"), current) is not None:
        for stale in (*folder.glob("*.npz"), *folder.glob("*.json")):
            stale.unlink()
        atomic_write_json(folder / "provenance.json", {"provenance": current}, indent=2)
    evaluated = {}
    for split in SPLITS:
        scores_path, metrics_path = folder / f"{split}.npz", folder / f"{split}-metrics.json"
        if not (scores_path.is_file() and metrics_path.is_file()):
            scores, metrics = score_split(record, data.scenes_of(split), device, folder / f"predictions-{split}")
            scores.save(scores_path)
            atomic_write_json(metrics_path, metrics, indent=2)
        evaluated[split] = (Scores.load(scores_path), json.loads(metrics_path.read_text()))
    return evaluated


def score_split(
    record: dict[str, Any] | None, scenes: Path, device: str, predictions_dir: Path
) -> tuple[Scores, dict[str, Any]]:
    """The completion protocol's per-instance scores and headline metrics on ``scenes``' val split,
    and (for a trained run) the full pipeline's from stage-1 detections (kept in
    ``predictions_dir``), beside those detections' visible masks."""
    completer = VisibleCompleter() if record is None else load_checkpoint_completer(record["checkpoint"], device=device)
    settings = EvaluationSettings(kinds=("amodal",))
    instances = CompletedInstances()
    completion = evaluate_completion(scenes, completer, "val", settings, on_image=instances)
    metrics: dict[str, Any] = {"completion": headline_metrics(completion)}
    if record is not None:
        predicted = evaluate_checkpoint(
            scenes,
            "val",
            PredictSettings(checkpoint=Path(record["checkpoint"]), score_threshold=0.05, device=device, masks=False),
            settings,
            predictions_dir=predictions_dir,
        )
        metrics["pipeline"] = headline_metrics(predicted.evaluation)
        metrics["pipeline_visible"] = headline_metrics(
            visible_baseline(scenes, "val", predicted.prediction.predictions_file)
        )
    return Scores(*instances.arrays()), metrics


def run_twostage_study(settings: StudySettings, log: Log = print, command: str = "") -> dict[str, Any]:
    """Run the study into ``settings.out`` (see the module docstring); returns ``results.json``'s content."""
    started = time.perf_counter()
    data = prepare_data(settings, log)
    runs: dict[str, list[dict[str, Any]]] = {}
    scores: dict[str, dict[str, list[Scores]]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    visible = evaluate_run(None, data, settings.out / "runs" / "visible" / "tables", settings.device)
    scores[VISIBLE] = {split: [visible[split][0]] for split in SPLITS}
    runs[VISIBLE] = [{split: visible[split][1] for split in SPLITS}]
    for kind in settings.kinds:
        for seed in range(settings.seeds):
            record = train_run(settings, data, kind, seed, log)
            log(f"evaluate {kind}, seed {seed}")
            run_folder = settings.out / "runs" / kind / f"seed-{seed}"
            evaluated = evaluate_run(record, data, run_folder / "tables", settings.device)
            records.setdefault(kind, []).append({k: v for k, v in record.items() if k != "provenance"})
            runs.setdefault(kind, []).append({split: evaluated[split][1] for split in SPLITS})
            for split in SPLITS:
                scores.setdefault(kind, {}).setdefault(split, []).append(evaluated[split][0])

    results: dict[str, Any] = {
        "command": command,
        **git_state(),
        "code": code_fingerprint(),
        "machine": machine(),
        "settings": {
            **{key: value for key, value in asdict(settings).items() if key not in ("out", "plan")},
            "out": str(settings.out),
            "plan": asdict(settings.plan),
        },
        "instances": {split: int(len(scores[VISIBLE][split][0].iou)) for split in SPLITS},
        "images": {split: int(len(set(scores[VISIBLE][split][0].unit.tolist()))) for split in SPLITS},
        "models": {},
        "differences": {},
    }
    for name, by_split in scores.items():
        results["models"][name] = {
            "runs": records.get(name, []),
            **{
                split: {
                    **set_metrics(by_split[split], settings.resamples, settings.data_seed),
                    "per_seed": [run[split] for run in runs[name]],
                }
                for split in SPLITS
            },
        }
    chosen = max(settings.kinds, key=lambda kind: results["models"][kind]["val"]["miou"]["value"])
    results["chosen"] = chosen
    for kind in settings.kinds:
        for opponent in (VISIBLE, *(other for other in settings.kinds if other != kind)):
            results["differences"][f"{kind} - {opponent}"] = {
                split: {
                    key: paired_difference(
                        scores[kind][split],
                        # the visible mask does not depend on a seed: the same scores pair with every seed
                        scores[opponent][split] * (settings.seeds if opponent == VISIBLE else 1),
                        name,
                        settings.resamples,
                        settings.data_seed,
                    )
                    for key, name in (("miou", "iou"), ("hidden_miou", "hidden_iou"))
                }
                for split in SPLITS
            }
    results["seconds"] = time.perf_counter() - started
    atomic_write_json(settings.out / "results.json", results, indent=1)
    atomic_write_text(settings.out / "report.md", report_markdown(results))
    log(f"report: {settings.out / 'report.md'}")
    return results
