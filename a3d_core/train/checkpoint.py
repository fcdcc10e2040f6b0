"""Training checkpoints: written atomically, loaded with ``weights_only=True``.

A checkpoint is a plain dict that ``torch.load(..., weights_only=True)`` can read (tensors,
dicts, lists, ints, floats, strings, ``None``)::

    model           state_dict of the (unwrapped) model
    model_config    model.config(), enough to rebuild the architecture
    category_names  list[str], the order of the model's categories
    optimizer       optimizer.state_dict()
    scheduler       scheduler.state_dict()
    grad_scaler     GradScaler.state_dict() (empty unless fp16 AMP)
    rng             python / numpy / torch (CPU, CUDA) generator states of rank 0
    rng_by_rank     the same for every rank of a distributed run (absent in a single process)
    step, epoch     the number of optimizer steps taken, the epoch of the last step
    config          the training configuration (settings of the loop and of the command)
    metrics         the latest validation metrics
    loop_state      what the loop needs to continue exactly (loss window, best metric)

``last.pt`` is rewritten at every checkpoint step, ``best.pt`` when validation improves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from a3d_core.errors import TrainingError, describe_config_difference
from a3d_core.io.atomic import atomic_torch_save
from a3d_core.io.checkpoints import read_checkpoint

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"

REQUIRED_TRAINING_KEYS = ("model", "optimizer", "scheduler", "rng", "step", "epoch", "config")


def save_checkpoint(checkpoint: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (the old file stays intact until the new one is complete)."""
    return atomic_torch_save(dict(checkpoint), path)


def load_checkpoint(path: str | Path, required_keys: tuple[str, ...] = REQUIRED_TRAINING_KEYS) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` onto the CPU.

    Raises:
        InputError: naming the file, when it is missing, unreadable, not a dict, or lacks one of
            ``required_keys``.
    """
    return read_checkpoint(path, required_keys, "an a3d training checkpoint")


def load_model_state(model: torch.nn.Module, checkpoint: Mapping[str, Any], path: str | Path) -> None:
    """Load ``checkpoint["model"]`` into ``model`` strictly.

    When the checkpoint carries ``model_config`` and the model has ``config()``, the two are
    compared first, so that a checkpoint of another architecture is named as such.

    Raises:
        TrainingError: naming the file and what does not match.
    """
    saved_config = checkpoint.get("model_config")
    if saved_config is not None and hasattr(model, "config"):
        current_config = model.config()
        if saved_config != current_config:
            raise TrainingError(
                f"{path}: checkpoint of another architecture "
                f"({describe_config_difference(saved_config, current_config)})"
            )
    try:
        model.load_state_dict(checkpoint["model"], strict=True)
    except RuntimeError as error:
        details = " ".join(str(error).split())
        if len(details) > 300:
            details = details[:300] + "..."
        raise TrainingError(f"{path}: checkpoint does not fit this model ({details})") from error
