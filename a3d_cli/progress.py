"""How every long command shows its progress: a bar on a terminal, plain lines in a log.

:class:`ProgressDisplay` is the :class:`~a3d_core.progress.ProgressReporter` the commands pass to
``a3d_core``. On a terminal each phase gets its own rich progress bar (count, the phase's values
such as the loss, elapsed time and time left). When standard output is not a terminal (``> log``,
``nohup``, CI) it prints, flushed at once:

- one line when a phase starts and one when it ends (with its duration and throughput);
- while it runs, one line at most every :data:`DEFAULT_INTERVAL` seconds (``a3d --progress-every
  SECONDS`` or ``$A3D_PROGRESS_EVERY``; 0 prints a line at every update)::

      [a3d] train: 120/600 steps (20%) | loss 0.4123 | val mIoU 0.812 | inst/s 12.3 | steps/s 4.10 | elapsed 0:00:29 | left 0:01:57
"""  # noqa: E501 (the example above is one progress line, as printed)

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

DEFAULT_INTERVAL = 30.0
"""Seconds between two plain progress lines."""
INTERVAL_ENV = "A3D_PROGRESS_EVERY"

_interval = DEFAULT_INTERVAL


def set_interval(seconds: float) -> None:
    """Seconds between two plain progress lines, for every display made afterwards (``a3d --progress-every``)."""
    global _interval
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise ValueError(f"progress interval must be a finite number of seconds >= 0, got {seconds}")
    _interval = seconds


def format_duration(seconds: float) -> str:
    """``h:mm:ss``."""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class ProgressDisplay:
    """Shows the phases reported by ``a3d_core`` on ``console`` (see the module docstring).

    Use as a context manager: leaving it ends the open phase and removes the bars (``transient``)
    or leaves them on screen.
    """

    def __init__(self, console: Console, interval: float | None = None, transient: bool = True) -> None:
        self.console = console
        self.interval = _interval if interval is None else interval
        self.interactive = console.is_terminal
        self._bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[values]}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=console,
            transient=transient,
            disable=not self.interactive,
        )
        self._task: TaskID | None = None
        self._phase: str | None = None
        self._unit = "step"
        self._total: int | None = None
        self._done = 0
        self._first_done = 0
        self._fields: dict[str, str] = {}
        self._started = self._last_line = 0.0

    def __enter__(self) -> ProgressDisplay:
        self._bars.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if exc_info[0] is None:
            self.end()
        self._phase = None
        self._bars.stop()

    def start(self, phase: str, total: int | None = None, done: int = 0, unit: str = "step") -> None:
        self.end()
        self._phase, self._total, self._done, self._first_done, self._unit, self._fields = (
            phase,
            total,
            done,
            done,
            unit,
            {},
        )
        self._started = self._last_line = time.perf_counter()
        if self.interactive:
            self._task = self._bars.add_task(phase, total=total, completed=done, values="")
        else:
            size = f" ({total} {_plural(unit, total)})" if total is not None else ""
            self._line(f"{phase}: started{size}")

    def update(self, done: int, total: int | None = None, **fields: str) -> None:
        if self._phase is None:
            return
        self._done = done
        if total is not None:
            self._total = total
        self._fields.update(fields)
        if self.interactive:
            values = " ".join(f"{label} {value}" for label, value in self._fields.items())
            self._bars.update(self._task, completed=done, total=self._total, values=values)
            return
        now = time.perf_counter()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self._line(self.status_line(now))

    def end(self) -> None:
        if self._phase is None:
            return
        if self.interactive:
            if self._total is not None:
                self._bars.update(self._task, completed=self._total)
        else:
            seconds = time.perf_counter() - self._started
            if self._total is None and self._done == 0:
                self._line(f"{self._phase}: done in {format_duration(seconds)}")
            else:
                rate = (self._done - self._first_done) / seconds if seconds > 0 else 0.0
                self._line(
                    f"{self._phase}: done, {self._done} {_plural(self._unit, self._done)} in "
                    f"{format_duration(seconds)} ({rate:.2f} {self._unit}s/s)"
                )
        self._phase = None

    def status_line(self, now: float) -> str:
        """The plain line of the open phase: count, its values, throughput, elapsed and time left."""
        elapsed = now - self._started
        rate = (self._done - self._first_done) / elapsed if elapsed > 0 else 0.0
        count = f"{self._done}/{self._total if self._total is not None else '?'} {_plural(self._unit, self._total)}"
        if self._total:
            count += f" ({100 * self._done / self._total:.0f}%)"
        left = format_duration((self._total - self._done) / rate) if rate > 0 and self._total is not None else "?"
        parts = [
            count,
            *(f"{label} {value}" for label, value in self._fields.items()),
            f"{self._unit}s/s {rate:.2f}",
            f"elapsed {format_duration(elapsed)}",
            f"left {left}",
        ]
        return f"{self._phase}: " + " | ".join(parts)

    def _line(self, text: str) -> None:
        self.console.print(f"[a3d] {text}", markup=False, highlight=False, soft_wrap=True)


def _plural(unit: str, count: int | None) -> str:
    return unit if count == 1 else f"{unit}s"
