"""Evaluate a fine-tuned checkpoint on a dataset split: predict the split, then score it.

The two steps are exactly ``a3d predict --dataset D --split S`` and ``a3d evaluate --dataset D
--split S --predictions predictions.json``; ``a3d evaluate --checkpoint`` and ``a3d demo`` run
them together.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from a3d_core.eval.evaluate import EvaluationResult, EvaluationSettings, evaluate_dataset
from a3d_core.predict import PredictResult, PredictSettings, predict_dataset


@dataclass(frozen=True)
class CheckpointEvaluation:
    """The predictions written (``prediction.out`` is gone when no folder was asked for) and their scores."""

    prediction: PredictResult
    evaluation: EvaluationResult


def evaluate_checkpoint(
    dataset: str | os.PathLike,
    split: str = "val",
    predict_settings: PredictSettings | None = None,
    evaluation_settings: EvaluationSettings | None = None,
    predictions_dir: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
) -> CheckpointEvaluation:
    """Predict split ``split`` of ``dataset`` with ``predict_settings.checkpoint`` and evaluate it.

    ``predictions_dir`` keeps the predictions (COCO results, overlays, masks); without it they
    are written to a temporary folder that is removed afterwards. Evaluation should see every
    detection, so ``predict_settings.score_threshold`` is best kept low (COCO AP ranks by score).
    """
    predict_settings = predict_settings or PredictSettings(score_threshold=0.05, masks=False, overlays=False)
    if predictions_dir is not None:
        return _run(dataset, split, Path(predictions_dir), predict_settings, evaluation_settings, data_root)
    with tempfile.TemporaryDirectory(prefix="a3d-evaluate-") as folder:
        return _run(dataset, split, Path(folder), predict_settings, evaluation_settings, data_root)


def _run(dataset: str | os.PathLike, split: str, folder: Path, predict_settings: PredictSettings,
         evaluation_settings: EvaluationSettings | None, data_root: str | os.PathLike | None) -> CheckpointEvaluation:
    prediction = predict_dataset(dataset, split, folder, predict_settings, data_root=data_root)
    evaluation = evaluate_dataset(dataset, prediction.predictions_file, split, evaluation_settings, data_root)
    return CheckpointEvaluation(prediction, evaluation)
