"""Where the viewpoint benchmark's cached results came from, so that a rerun never mixes code versions.

Every prepared dataset, trained model and cached evaluation table records its provenance: the
code that made it and the full settings it came from. The code is named twice: for people, the
git commit and whether the tree was dirty (:func:`git_state`); for matching, a fingerprint of the
package's source (:func:`code_fingerprint`, the hash of every ``a3d_core`` Python file), which
changes with any edit of the code, committed or not, and with nothing else (a commit that only
touches docs keeps every cached model). A rerun reuses what matches the current fingerprint and
settings; what is stale is redone, or refused under the ``refuse`` policy (:data:`STALE_POLICIES`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from a3d_core.errors import InputError, describe_config_difference

PACKAGE = Path(__file__).resolve().parents[2]
STALE_POLICIES = ("redo", "refuse")
"""What a rerun does with a stale cached result: ``redo`` it (retrain a model, re-prepare the data),
or ``refuse`` with a one-line error naming the folder and what differs."""


def code_fingerprint() -> str:
    """The SHA-256 of every Python file of the ``a3d_core`` package, paths and contents, in order."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def git_state() -> dict[str, Any]:
    """``{"commit": git rev-parse HEAD, "dirty": uncommitted changes under the package}``; both
    ``None`` outside a git checkout."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--", "."))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": dirty}


def machine() -> dict[str, Any]:
    """The machine results are made on: platform, CPUs, torch threads and version, the GPU."""
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _git(*arguments: str) -> str:
    completed = subprocess.run(["git", *arguments], cwd=PACKAGE, capture_output=True, text=True, check=True, timeout=10)
    return completed.stdout.strip()


def provenance(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a result made now from ``settings`` (JSON-able): the code's fingerprint, its
    git state, and the settings."""
    return {"code": code_fingerprint(), **git_state(), "settings": json.loads(json.dumps(settings))}


def stale_reason(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> str | None:
    """Why a result recorded as ``recorded`` (a :func:`provenance`, or ``None`` when none was kept)
    cannot stand for ``current``; ``None`` when it can."""
    if recorded is None:
        return "it records no provenance"
    if recorded.get("code") != current["code"]:
        return f"it was made by other code (commit {recorded.get('commit')}, dirty {recorded.get('dirty')})"
    if recorded.get("settings") != current["settings"]:
        return (
            f"it was made with other settings ({describe_config_difference(recorded['settings'], current['settings'])})"
        )
    return None


def read_provenance(path: Path) -> dict[str, Any] | None:
    """The provenance recorded in the JSON file ``path`` (its ``provenance`` entry), or ``None``."""
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("provenance")


RUN_RECORD = "model.json"
RUN_STARTED = "provenance.json"
"""A trained run's record, written when it finishes, and its provenance, written when it starts
(so that an interrupted run resumes only under the same code and settings)."""


def finished_run(
    what: str, run: Path, current: Mapping[str, Any], policy: str, log: Callable[[str], None]
) -> dict[str, Any] | None:
    """The record (``run/model.json``) of a finished run made as ``current`` says, or ``None``
    when there is none to reuse: an interrupted run of the same provenance is left to resume, a
    stale one, finished or not, is removed (``redo``, logged) or refused (``refuse``)."""
    record_path = run / RUN_RECORD
    if record_path.is_file() or (run / "last.pt").is_file():
        recorded = read_provenance(record_path if record_path.is_file() else run / RUN_STARTED)
        if not check_stale(what, run, stale_reason(recorded, current), policy):
            return json.loads(record_path.read_text()) if record_path.is_file() else None
        log(f"train {what}: {run} is stale, training it again")
        shutil.rmtree(run)
    return None


def check_stale(what: str, folder: Path, reason: str | None, policy: str) -> bool:
    """``True`` when the result in ``folder`` must be redone (``reason`` is not ``None``); raises
    :class:`InputError` instead under the ``refuse`` policy."""
    if reason is None:
        return False
    if policy == "refuse":
        raise InputError(f"{folder}: {what} is stale: {reason}; rerun with --stale redo or remove the folder")
    return True
