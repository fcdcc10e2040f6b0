"""Errors a user can act on.

Every problem caused by input (a missing file, malformed JSON, a checkpoint of another
architecture, a non-finite loss) is raised as :class:`A3DError` with a message that names the
file or entry and the problem. The CLI prints that message on one line and exits non-zero; a
traceback is reserved for bugs.
"""

from __future__ import annotations

from typing import Any, Mapping


class A3DError(Exception):
    """An input or runtime problem with a message meant for the user."""


class InputError(A3DError, ValueError):
    """Bad input: a missing or unreadable file, malformed content, a wrong option value."""


class TrainingError(A3DError, RuntimeError):
    """A training run cannot go on (non-finite loss, mismatched checkpoint)."""


def describe_config_difference(saved: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """``"key: saved -> current"`` for each top-level entry that differs (for error messages)."""
    keys = sorted(set(saved) | set(current))
    differences = [
        f"{key}: {saved.get(key)!r} -> {current.get(key)!r}" for key in keys if saved.get(key) != current.get(key)
    ]
    return "; ".join(differences)
