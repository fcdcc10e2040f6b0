"""What the two-stage study compares and where (shared by its steps and its report)."""

from __future__ import annotations

SPLITS = ("val", "test")
"""The scenes scored: ``val`` chooses the kind, ``test`` is scored once per model."""
VISIBLE = "visible mask"
"""The no-completion baseline: the ground-truth (completion) or detected (pipeline) visible mask as the amodal mask."""
