"""Run folders under the runs root: where a training command writes by default, and the newest
run of a kind, so that one command finds what the previous one wrote.

The runs root is ``--runs-root`` where a command has it, else ``$A3D_RUNS_ROOT``, else ``./runs``.
A run folder holds ``last.pt`` and, with validation, ``best.pt`` (:mod:`a3d_core.train.checkpoint`).
Its kind is read from the checkpoint itself: :data:`PRETRAINING` for a stage-2 model
(``a3d pretrain``), :data:`FINE_TUNED` for a two-stage model (``a3d finetune``); the dataset it
trained on is the one its training configuration records. Every command that defaults to the
newest run of a kind finds it through :func:`newest_checkpoint`.

Default run folders never overwrite a run: ``a3d pretrain`` writes ``runs/pretrain``, or, when
that folder holds a run already (a ``last.pt``), the first of ``runs/pretrain-2``,
``runs/pretrain-3``, ... that does not (:func:`fresh_run_folder`); ``--resume`` continues the
highest-numbered of them that holds one (:func:`latest_run_folder`).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from a3d_core.errors import InputError
from a3d_core.model.a3d import ARCHITECTURE
from a3d_core.train.checkpoint import BEST_CHECKPOINT, LAST_CHECKPOINT

RUNS_ROOT_ENV = "A3D_RUNS_ROOT"
DEFAULT_RUNS_ROOT = Path("runs")
CHECKPOINT_NAMES = (BEST_CHECKPOINT, LAST_CHECKPOINT)

PRETRAINING = "pretraining"
FINE_TUNED = "fine-tuned"
# kind -> (config section, dataset entry)
_CONFIG_KEYS = {PRETRAINING: ("pretrain", "data"), FINE_TUNED: ("finetune", "dataset")}


@dataclass(frozen=True)
class Run:
    """A run's checkpoint and what it records about itself.

    Attributes:
        checkpoint: the checkpoint file (of a run folder found by :func:`newest_run`: ``best.pt``, else ``last.pt``).
        kind: :data:`PRETRAINING` or :data:`FINE_TUNED`.
        settings: what the command recorded about the run (the checkpoint's ``config["pretrain"]``
            or ``config["finetune"]``; empty when not recorded).
    """

    checkpoint: Path
    kind: str
    settings: Mapping[str, Any]

    @property
    def dataset(self) -> Path | None:
        """The dataset folder the run trained on, as recorded (``None`` when not recorded)."""
        recorded = self.settings.get(_CONFIG_KEYS[self.kind][1])
        return Path(recorded) if isinstance(recorded, str) else None


def runs_root(explicit: str | os.PathLike | None = None) -> Path:
    """The runs folder: ``explicit``, else ``$A3D_RUNS_ROOT``, else ``./runs``."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(RUNS_ROOT_ENV)
    return Path(env) if env else DEFAULT_RUNS_ROOT


def dataset_name(dataset: str | os.PathLike) -> str:
    """The folder name of a dataset given by name or path (``d2sa``, ``data/d2sa/``, ``.``), which
    names its default run folder and matches its runs."""
    return Path(os.path.abspath(dataset)).name


def read_run(checkpoint: str | os.PathLike) -> Run | None:
    """The :class:`Run` a checkpoint belongs to; ``None`` for a file that is not a readable a3d model
    checkpoint (read lazily, ``weights_only``)."""
    path = Path(checkpoint)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # unreadable files are simply not runs
        return None
    model_config = content.get("model_config") if isinstance(content, dict) else None
    if not isinstance(model_config, Mapping):
        return None
    kind = (
        FINE_TUNED
        if model_config.get("architecture") == ARCHITECTURE
        else PRETRAINING
        if "kind" in model_config
        else None
    )
    if kind is None:
        return None
    config = content.get("config")
    settings = config.get(_CONFIG_KEYS[kind][0]) if isinstance(config, Mapping) else None
    return Run(path, kind, settings if isinstance(settings, Mapping) else {})


def newest_run(
    kind: str, root: str | os.PathLike | None = None, dataset: str | os.PathLike | None = None
) -> Run | None:
    """The newest run of ``kind`` under the runs root: per run folder ``best.pt`` (else ``last.pt``),
    the run whose file was written last; ``None`` when there is none.

    Args:
        kind: :data:`PRETRAINING` or :data:`FINE_TUNED`.
        dataset: only runs that trained on a dataset folder of this name (``d2sa`` matches
            ``data/d2sa`` and ``/elsewhere/d2sa``).
    """
    if kind not in _CONFIG_KEYS:
        raise ValueError(f"kind must be one of {', '.join(_CONFIG_KEYS)}, got {kind!r}")
    wanted = dataset_name(dataset) if dataset is not None else None
    candidates = [
        run
        for run in _runs(runs_root(root))
        if run.kind == kind and (wanted is None or (run.dataset is not None and dataset_name(run.dataset) == wanted))
    ]
    return max(candidates, key=lambda run: run.checkpoint.stat().st_mtime, default=None)


def newest_checkpoint(
    kind: str,
    root: str | os.PathLike | None = None,
    dataset: str | os.PathLike | None = None,
    instead: str = "--checkpoint FILE",
) -> Path:
    """The checkpoint of the newest run of ``kind`` under the runs root (:func:`newest_run`).

    Args:
        instead: what the user can give instead of the default, named in the error.

    Raises:
        InputError: saying how to train such a run, when there is none.
    """
    run = newest_run(kind, root, dataset)
    if run is None:
        training = (
            "a3d pretrain" if kind == PRETRAINING else f"a3d finetune --dataset {dataset if dataset else 'scenes'}"
        )
        which = f" for {dataset_name(dataset)}" if dataset is not None else ""
        raise InputError(
            f"no {kind} run{which} under {runs_root(root)}: train one with `{training}`, or give {instead}"
        )
    return run.checkpoint


def fresh_run_folder(name: str, root: str | os.PathLike | None = None) -> Path:
    """``<runs root>/<name>``, or the first of ``<name>-2``, ``<name>-3``, ... that holds no run."""
    return next(itertools.dropwhile(_holds_run, _numbered(name, root)))


def latest_run_folder(name: str, root: str | os.PathLike | None = None) -> Path:
    """The highest-numbered of ``<runs root>/<name>``, ``<name>-2``, ... that holds a run (to resume);
    ``<runs root>/<name>`` when none does."""
    held = list(itertools.takewhile(_holds_run, _numbered(name, root)))
    return held[-1] if held else runs_root(root) / name


def _numbered(name: str, root: str | os.PathLike | None) -> Iterator[Path]:
    """``<runs root>/<name>``, ``<name>-2``, ``<name>-3``, ..."""
    base = runs_root(root)
    return (base / (name if number == 1 else f"{name}-{number}") for number in itertools.count(1))


def _holds_run(folder: Path) -> bool:
    return (folder / LAST_CHECKPOINT).exists()


def _runs(folder: Path) -> list[Run]:
    """One run per folder under ``folder`` that holds an a3d checkpoint: its ``best.pt``, else ``last.pt``."""
    chosen: dict[Path, Run] = {}
    if folder.is_dir():
        for name in reversed(CHECKPOINT_NAMES):  # best.pt overrides last.pt of the same run
            for path in folder.rglob(name):
                run = read_run(path)
                if run is not None:
                    chosen[path.parent] = run
    return list(chosen.values())
