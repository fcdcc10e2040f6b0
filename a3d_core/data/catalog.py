"""Where prepared datasets and runs live, so that commands find them by name.

A dataset prepared as ``a3d prepare d2sa`` lands in ``<data root>/d2sa`` and is found later by
``a3d finetune --dataset d2sa``. The data root is ``--data-root``, else the environment variable
``A3D_DATA_ROOT``, else ``./data``.
"""

from __future__ import annotations

import os
from pathlib import Path

from a3d_core.errors import InputError

DATA_ROOT_ENV = "A3D_DATA_ROOT"
DEFAULT_DATA_ROOT = Path("data")

KNOWN_DATASETS = ("kins", "kins2020", "d2sa", "cocoa-cls", "cocoa", "shapenet", "scenes")


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The data root: ``explicit`` if given, else ``$A3D_DATA_ROOT``, else ``./data``."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env) if env else DEFAULT_DATA_ROOT


def resolve_dataset(name_or_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """A dataset folder from a path, or from a name under the data root.

    Raises :class:`InputError` naming both places looked at when neither exists.
    """
    candidate = Path(name_or_dir)
    if candidate.is_dir():
        return candidate
    under_root = data_root(root) / str(name_or_dir)
    if under_root.is_dir():
        return under_root
    raise InputError(
        f"dataset {str(name_or_dir)!r}: no folder {candidate} and none at {under_root} "
        f"(prepare it with `a3d prepare ...`, or set --data-root / ${DATA_ROOT_ENV})"
    )
