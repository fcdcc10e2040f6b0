"""Reading checkpoints, which are untrusted input: ``torch.load(..., weights_only=True)`` only.

One reader serves every kind of checkpoint (training runs, stage-2 models, two-stage models), so
that a missing, corrupt, foreign or mismatched file always gets a message naming the file and
what is wrong with it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from a3d_core.errors import InputError

_REFUSED_BY_WEIGHTS_ONLY = "Weights only load failed"
"""How torch's message begins when its safe unpickler refuses a file (it goes on to suggest weights_only=False)."""


def read_checkpoint(
    path: str | os.PathLike, required_keys: tuple[str, ...], description: str, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load the dict stored at ``path`` and check that it holds ``required_keys``.

    ``description`` names the expected kind in messages, e.g. ``"a stage-2 checkpoint"``.

    Raises:
        InputError: naming the file, when it is missing, unreadable (truncated, not a PyTorch
            file, or holding objects ``weights_only`` refuses), not a dict, or lacks a key.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for truncated, foreign or unsafe files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if reason.startswith(_REFUSED_BY_WEIGHTS_ONLY):  # torch's advice to load unsafely is not ours to give
            reason = (
                "it holds objects other than tensors and plain containers; torch.load(weights_only=True) refused it"
            )
        if not zipfile.is_zipfile(path):
            reason = f"not the zip archive torch.save writes; torch.load: {reason}"
        raise InputError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict):
        raise InputError(f"{path}: not {description} (holds a {type(checkpoint).__name__}, expected a dict)")
    missing = [key for key in required_keys if key not in checkpoint]
    if missing:
        raise InputError(f"{path}: not {description} (missing {', '.join(missing)}; found {sorted(checkpoint)})")
    return checkpoint


def state_dict_problems(expected: Mapping[str, torch.Tensor], found: Mapping[str, Any], shown: int = 3) -> str:
    """What keeps ``found`` from loading strictly into a model whose state dict is ``expected``:
    ``"missing: ...; unexpected: ...; shape mismatch: ..."`` (empty when it fits)."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    shaped = [
        f"{key} {tuple(found[key].shape)} != {tuple(value.shape)}"
        for key, value in expected.items()
        if key in found and getattr(found[key], "shape", None) != value.shape
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shaped)):
        if items:
            more = f" and {len(items) - shown} more" if len(items) > shown else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:shown])}{more}")
    return "; ".join(parts)


def load_checked_weights(model: torch.nn.Module, checkpoint: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Load ``checkpoint["model"]`` into a model rebuilt from the checkpoint's own config.

    The model must list the checkpoint's ``category_names`` (when it has ``category_names``) and
    the state dict must fit it exactly; otherwise :class:`InputError` names the file and the
    difference (the file's weights and config disagree: it was edited or is corrupt).
    """
    names = getattr(model, "category_names", None)
    if names is not None and list(checkpoint["category_names"]) != list(names):
        raise InputError(
            f"{path}: category_names {checkpoint['category_names']} disagree with the model config's {names}"
        )
    state = checkpoint["model"]
    if not isinstance(state, Mapping):
        raise InputError(f"{path}: 'model' is not a state dict")
    adopt_data_sizes = getattr(model, "adopt_data_sizes", None)
    if callable(adopt_data_sizes):
        adopt_data_sizes(state)
    problems = state_dict_problems(model.state_dict(), state)
    if problems:
        raise InputError(f"{path}: weights of another architecture than its config: {problems}")
    model.load_state_dict(state)
