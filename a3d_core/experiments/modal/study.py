"""The modal study (issue 25): completion learned from ordinary (modal) instance masks, from the
built-in library, or from both, scored on held-out real masks and on the built-in scenes.

Deocclusion (Zhan et al., CVPR 2020; the paper's ref. 36) learns amodal completion from modal
masks alone; A3D (Li et al., ECCV 2022) learns its shape prior from a library of shapes. The study
asks whether real shapes help complete the built-in scenes (a model trained on both sources
against one trained on the library) and whether the library helps complete real masks (both
against real), for each stage-2 kind, with every model trained and scored by the same code:

1. **Specs** (:mod:`~a3d_core.experiments.modal.specs`): the scales, the sources, the kinds.
2. **Data and training** (:mod:`~a3d_core.experiments.modal.training`): the three datasets;
   every trained model sees the same instances, batch and flips, chosen on its own val.
3. **Evaluation** (:mod:`~a3d_core.experiments.modal.evaluation`): per-instance scores on each
   test set, cached; mIoU and mIoU_occ with intervals over test images and seeds; differences
   paired by instance and seed.
4. **Report** (:mod:`~a3d_core.experiments.modal.report`).

:func:`run_modal_study` writes ``<out>/report.md`` and ``results.json``. It resumes: the data,
each finished model and its scores are reused while their provenance matches
(:mod:`a3d_core.experiments.viewpoints.provenance`); what is stale is redone or refused. With
``models`` given it trains and scores those models only and writes no report, so that processes
given disjoint models run side by side in one folder (each writes only its models' run folders;
the data must be prepared first, ``data_only``); a last run without ``models`` reuses them all and
writes the report. ``benchmarks/bm_modal.py`` is its command.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from a3d_core.errors import InputError
from a3d_core.experiments.modal.evaluation import METRICS, Scores, evaluate_model, paired_difference, set_metrics
from a3d_core.experiments.modal.report import report_markdown
from a3d_core.experiments.modal.specs import HEADLINE_KINDS, SCALES, TEST_SETS, ModelSpec, StudyScale, select_models
from a3d_core.experiments.modal.training import Log, model_seeds, prepare_data, run_folder, train_model
from a3d_core.experiments.viewpoints.provenance import STALE_POLICIES, code_fingerprint, git_state, machine
from a3d_core.io.atomic import atomic_write_bytes, atomic_write_json
from a3d_core.model.asm import load_stage2_from_checkpoint
from a3d_core.runtime import resolve_device

COMPARISONS = (("both", "library"), ("both", "real"))
"""Paired differences of each headline kind, on every test set: adding real shapes to the library,
adding the library to real shapes."""
RUN_FIELDS = ("seed", "steps", "instances", "seconds", "best_step", "val_miou", "commit", "checkpoint")


@dataclass
class StudySettings:
    """scale: a :data:`SCALES` name or a :class:`StudyScale`; out: the study folder; annotations:
    the COCO instance file of the real masks; models: slugs or kinds (``None``: all, and the
    report); data_only: prepare the data and stop; seed: of the data, the bootstrap and the first
    training seed; stale: what a rerun does with a stale dataset or model (:data:`STALE_POLICIES`)."""

    scale: str | StudyScale
    out: Path
    annotations: Path
    models: Sequence[str] | None = None
    data_only: bool = False
    seed: int = 0
    device: str = "auto"
    stale: str = "redo"

    def __post_init__(self) -> None:
        self.out, self.annotations = Path(self.out), Path(self.annotations)
        if isinstance(self.scale, str):
            if self.scale not in SCALES:
                raise InputError(f"--scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
            self.scale = SCALES[self.scale]
        if self.stale not in STALE_POLICIES:
            raise InputError(f"--stale must be one of {', '.join(STALE_POLICIES)}, got {self.stale!r}")
        try:
            self.specs: list[ModelSpec] = select_models(None if self.models is None else list(self.models))
        except ValueError as error:
            raise InputError(str(error)) from None


def run_modal_study(settings: StudySettings, log: Log = print, command: str = "") -> dict[str, Any] | None:
    """Run the study into ``settings.out``; see the module docstring. Returns ``results.json``'s
    content, or ``None`` when no report is written (``models`` or ``data_only`` given)."""
    scale: StudyScale = settings.scale  # type: ignore[assignment]
    started, load_before = time.perf_counter(), os.getloadavg()
    settings.out.mkdir(parents=True, exist_ok=True)
    data = prepare_data(
        scale, settings.out / "data", settings.annotations, settings.seed, log, settings.stale, settings.models is None
    )
    if settings.data_only:
        return None
    device = resolve_device(settings.device)
    scores: dict[str, list[dict[str, Scores]]] = {}
    models: dict[str, Any] = {}
    for spec in settings.specs:
        runs, records = [], []
        for index, seed in enumerate(model_seeds(spec, scale, settings.seed)):
            run = run_folder(settings.out, spec, index)
            record = (
                train_model(spec, scale, data, run, seed, settings.device, log, settings.stale)
                if spec.trained
                else None
            )
            log(f"evaluate {spec.name}, seed {seed}")
            runs.append(evaluate_model(spec, record, data, run / "tables", device))
            records.append(record or {"seed": seed, "steps": 0, "instances": 0, "seconds": 0.0})
        scores[spec.name] = runs
        models[spec.name] = {
            "kind": spec.kind,
            "source": spec.source,
            "headline": spec.headline,
            "runs": [{key: record.get(key) for key in RUN_FIELDS} for record in records],
            "seconds": sum(record["seconds"] or 0.0 for record in records),
            "parameters": (
                load_stage2_from_checkpoint(records[0]["checkpoint"]).active_parameter_count() if spec.trained else 0
            ),
        }
    if settings.models is not None:
        return None
    results: dict[str, Any] = {
        "scale": asdict(scale),
        "command": command,
        **git_state(),
        "code": code_fingerprint(),
        "machine": machine(),
        "models": models,
        "test_sets": {
            test_set: {
                name: set_metrics([run[test_set] for run in runs], scale.resamples, settings.seed)
                for name, runs in scores.items()
            }
            for test_set in TEST_SETS
        },
        "differences": [
            {
                "kind": kind,
                "first": first,
                "second": second,
                "test_set": test_set,
                **{
                    key: paired_difference(
                        [run[test_set] for run in scores[f"{kind} on {first}"]],
                        [run[test_set] for run in scores[f"{kind} on {second}"]],
                        name,
                        scale.resamples,
                        settings.seed,
                    )
                    for key, name in METRICS
                },
            }
            for kind in HEADLINE_KINDS
            for first, second in COMPARISONS
            for test_set in TEST_SETS
        ],
    }
    results["seconds"] = time.perf_counter() - started
    results["load_average"] = {"start": load_before, "end": os.getloadavg()}
    atomic_write_json(settings.out / "results.json", results, indent=1)
    atomic_write_bytes(settings.out / "report.md", report_markdown(results).encode())
    log(f"report: {settings.out / 'report.md'} ({results['seconds']:.0f} s)")
    return results
