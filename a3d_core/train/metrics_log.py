"""Where training metrics go: a JSONL file (always) and TensorBoard (when it is installed).

Every record is one JSON object on one line, with at least ``step`` and ``split`` (``"train"``
or ``"val"``). A line is written and flushed at once; a line torn by a crash is dropped when
the run resumes, and so is every record after the checkpoint the run resumes from, so the file
always reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from a3d_core.io.atomic import atomic_write_text

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class JsonlMetrics:
    """Append-only JSONL metrics file that can be cut back to a step on resume."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def rewind(self, step: int) -> None:
        """Keep only the complete records with ``step <= step`` (atomically rewrites the file)."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            line_step = _record_step(line)
            if line_step is not None and line_step <= step:
                kept.append(line)
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` as one line; non-finite floats become ``null`` so the line stays JSON."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({key: _json_value(value) for key, value in record.items()}, allow_nan=False)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()

    def close(self) -> None:
        """Nothing to release: every record is flushed when written."""

    def read(self) -> list[dict[str, Any]]:
        """All complete records, in order."""
        if not self.path.exists():
            return []
        return [
            json.loads(line)
            for line in self.path.read_text(encoding="utf-8").splitlines()
            if _record_step(line) is not None
        ]


class TensorBoardMetrics:
    """Scalars of each record under ``<split>/<name>``; events after the resume step are purged."""

    def __init__(self, log_dir: str | Path, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def append(self, record: Mapping[str, Any]) -> None:
        step = int(record["step"])
        split = record.get("split", "train")
        for name, value in record.items():
            if name not in ("step", "split") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(f"{split}/{name}", value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def open_tensorboard(log_dir: str | Path, purge_step: int | None) -> TensorBoardMetrics | None:
    """A :class:`TensorBoardMetrics`, or ``None`` when TensorBoard is not installed."""
    try:
        return TensorBoardMetrics(log_dir, purge_step)
    except ImportError:
        return None


def _record_step(line: str) -> int | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        return None
    return record["step"]


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
