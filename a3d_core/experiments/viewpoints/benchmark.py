"""The viewpoint benchmark: does a 3D shape prior complete objects at viewpoints training never saw?

The paper's central claim (sections 1 and 5): 2D amodal methods fail on viewpoints missing from
their training set, a 3D shape prior generalises to them. This benchmark tests it on the built-in
shape library, with every model trained and evaluated by the same code on the same splits, in
four steps, one module each:

1. **Specs** (:mod:`~a3d_core.experiments.viewpoints.specs`): the scales and the models, each a
   stage-2 kind with overrides of one base :class:`~a3d_core.model.asm.ASMSettings`: the visible
   mask; a training-free retrieval (ShapeDict's simplest form); ShapeDict (K-means atoms + edge
   refine); the 2D decoder; a U-Net 2D decoder of about A3D's active parameters; A3D with one
   camera (the paper's); A3D with the true camera (an upper bound) and camera-supervised A3D;
   the earlier A3D variants when named. The headline models are trained with several seeds.
2. **Data and training** (:mod:`~a3d_core.experiments.viewpoints.training`): ``a3d prepare
   shapenet`` with a viewpoint protocol (:mod:`a3d_core.data.viewpoints`): training elevations, a
   held-out azimuth wedge closed under mirrors and front/back twins (``test_newview``), held-out
   elevations (``test_elevation``), unseen (elevation, azimuth) pairs (``test_combination``) and
   far views (``test_farview``); ``val`` and ``test`` stay on training cameras. Every trained
   model gets the same flips and training instances; its checkpoint is chosen on ``val`` mIoU.
3. **Evaluation** (:mod:`~a3d_core.experiments.viewpoints.evaluation`): mIoU, hidden-part mIoU
   and mIoU by occlusion band with 95% bootstrap intervals over test objects and seeds, each 3D
   model minus each baseline (the best chosen on ``val``) with intervals paired by instance and
   seed index, and the 3D diagnostics of the A3D models (over their seeds).
4. **Report** (:mod:`~a3d_core.experiments.viewpoints.report`): ``report.md``, the plots and the
   example figure.

:func:`run_viewpoint_benchmark` writes ``<out>/report.md``, ``results.json`` and the plots; it
resumes: the prepared data, each finished model and its evaluation are reused while their
recorded provenance (code and settings, :mod:`~a3d_core.experiments.viewpoints.provenance`)
matches, and an interrupted model continues from its ``last.pt``; what is stale is redone, or
refused (``stale="refuse"``). ``benchmarks/bm_viewpoints.py`` is its command.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from a3d_core.data.shapenet import read_shard_manifest
from a3d_core.data.viewpoints import PROTOCOL_SPLITS
from a3d_core.errors import InputError
from a3d_core.eval.instances import InstanceTable
from a3d_core.experiments.viewpoints.evaluation import (
    MESHES_PER_OBJECT,
    OCCLUSION_BANDS,
    diagnostics_3d,
    evaluate_model,
    novel_view_targets,
    occlusion_rates,
    paired_difference,
    split_metrics,
    true_meshes,
)
from a3d_core.experiments.viewpoints.provenance import STALE_POLICIES, code_fingerprint, git_state, machine
from a3d_core.experiments.viewpoints.report import EXAMPLES_PER_SPLIT, example_figure, report_markdown, write_plots
from a3d_core.experiments.viewpoints.specs import (
    ALL_MODELS,
    BASELINES,
    MAIN_MODEL,
    MODELS,
    SCALES,
    BenchmarkScale,
    ModelSpec,
)
from a3d_core.experiments.viewpoints.training import (
    Log,
    load_model,
    model_seeds,
    prepare_data,
    run_folder,
    train_model,
)
from a3d_core.io.atomic import atomic_write_bytes, atomic_write_json
from a3d_core.runtime import resolve_device


@dataclass
class BenchmarkSettings:
    """scale: a :data:`SCALES` name or a :class:`BenchmarkScale`; out: the benchmark folder;
    models: the names or slugs (``a3d-1-camera``) of :data:`ALL_MODELS` to run (default: the
    :data:`MODELS`); seed: of the data, the bootstrap and the first training seed; device;
    stale: what a rerun does with a stale cached model or dataset (:data:`STALE_POLICIES`)."""

    scale: str | BenchmarkScale
    out: Path
    models: Sequence[str] | None = None
    seed: int = 0
    device: str = "auto"
    stale: str = "redo"

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if isinstance(self.scale, str):
            if self.scale not in SCALES:
                raise InputError(f"--scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
            self.scale = SCALES[self.scale]
        known = {m.name for m in ALL_MODELS} | {m.slug for m in ALL_MODELS}
        unknown = sorted(set(self.models or ()) - known)
        if unknown:
            raise InputError(f"unknown models {unknown} (known: {', '.join(m.slug for m in ALL_MODELS)})")
        if self.stale not in STALE_POLICIES:
            raise InputError(f"--stale must be one of {', '.join(STALE_POLICIES)}, got {self.stale!r}")

    @property
    def specs(self) -> list[ModelSpec]:
        if self.models is None:
            return list(MODELS)
        return [m for m in ALL_MODELS if {m.name, m.slug} & set(self.models)]


RUN_FIELDS = ("seed", "seconds", "best_step", "val_miou", "commit", "checkpoint")
"""What ``results.json`` keeps of each seed's run (``models.<name>.runs``)."""


def run_viewpoint_benchmark(settings: BenchmarkSettings, log: Log = print, command: str = "") -> dict[str, Any]:
    """Run the benchmark into ``settings.out``; see the module docstring. Returns ``results.json``'s content."""
    scale: BenchmarkScale = settings.scale  # type: ignore[assignment]
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    started, load_before = time.perf_counter(), os.getloadavg()
    data = prepare_data(scale, out / "data", settings.seed, log, settings.stale)
    manifest = read_shard_manifest(data)
    category_names = list(manifest["categories"])
    test_splits = [s for s in ("test", *PROTOCOL_SPLITS) if s in manifest["shards"]]
    occlusion = {split: occlusion_rates(data, split) for split in test_splits}
    targets = None
    truths = true_meshes(manifest)
    results: dict[str, Any] = {
        "scale": asdict(scale),
        "command": command,
        **git_state(),
        "code": code_fingerprint(),
        "machine": machine(),
        "protocol": manifest["viewpoint_protocol"],
        "main_model": MAIN_MODEL,
        "meshes_per_object": MESHES_PER_OBJECT,
        "examples_per_split": EXAMPLES_PER_SPLIT,
        "occlusion_bands": [label for label, _, _ in OCCLUSION_BANDS],
        "categories": category_names,
        "models": {},
        "splits": {},
        "differences": {},
        "diagnostics": {},
    }
    tables: dict[str, list[dict[str, InstanceTable]]] = {}
    loaded: dict[str, Any] = {}
    device = resolve_device(settings.device)
    for spec in settings.specs:
        runs, records, models = [], [], []
        for index, seed in enumerate(model_seeds(spec, scale, settings.seed)):
            run = run_folder(out, spec, index)
            record = {"name": spec.name, "kind": spec.kind, "instances": 0, "seconds": 0.0, "steps": 0, "seed": seed}
            if spec.trained:
                record = train_model(spec, scale, data, run, seed, settings.device, log, settings.stale)
            model = None if spec.kind == "visible" else load_model(spec, record, data, category_names, scale, seed)
            if model is not None:
                model.to(device)
            log(f"evaluate {spec.name}, seed {seed}")
            splits = ["val", *test_splits]
            runs.append(evaluate_model(spec, model, data, splits, run / "tables", device, record.get("provenance")))
            records.append(record)
            models.append(model)
        tables[spec.name] = runs
        model = loaded[spec.name] = models[0]
        results["models"][spec.name] = {
            **records[0],
            "description": spec.description,
            "headline": spec.headline,
            "runs": [{key: record.get(key) for key in RUN_FIELDS} for record in records],
            "seconds": sum(record["seconds"] or 0.0 for record in records),
            "parameters": model.active_parameter_count() if model is not None and spec.trained else 0,
            "val": split_metrics([run["val"] for run in runs], category_names, scale.resamples, settings.seed),
        }
        for split in test_splits:
            results["splits"].setdefault(split, {})[spec.name] = split_metrics(
                [run[split] for run in runs], category_names, scale.resamples, settings.seed, occlusion[split]
            )
        if spec.is_3d:
            targets = targets if targets is not None else novel_view_targets(data, test_splits)
            results["diagnostics"][spec.name] = diagnostics_3d(
                models, runs, test_splits, targets, scale.resamples, settings.seed, truths
            )

    baselines = [name for name in BASELINES if name in results["models"]]
    if baselines:
        best = max(baselines, key=lambda name: results["models"][name]["val"]["miou"]["value"])
        results["best_baseline"] = best
        for name in (spec.name for spec in settings.specs if spec.is_3d):
            results["differences"][name] = {
                opponent: {
                    split: {
                        metric: paired_difference(
                            [run[split] for run in tables[name]],
                            [run[split] for run in tables[opponent]],
                            field_name,
                            scale.resamples,
                            settings.seed,
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
