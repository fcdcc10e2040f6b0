"""Progress of long work, reported to whatever shows it.

Long functions in ``a3d_core`` (training, preparing data, predicting, the demo) take a
:class:`ProgressReporter` and tell it when a phase starts, how far it is and when it ends; they
never draw anything themselves. The command line passes one that draws a progress bar on a
terminal and prints plain lines at a fixed interval otherwise (:mod:`a3d_cli.progress`); library
users and tests pass nothing and get :data:`SILENT`.

A phase is one stretch of countable work ("train", "rendering views"): ``start`` opens it (and
ends the one before, if still open), ``update`` says how many units are done and carries named
values to show beside the count (``loss="0.412"``), ``end`` closes it.
"""

from __future__ import annotations

from typing import Callable, Mapping, Protocol


class ProgressReporter(Protocol):
    """Receives the progress of long work (see the module docstring)."""

    def start(self, phase: str, total: int | None = None, done: int = 0, unit: str = "step") -> None:
        """A phase of ``total`` units (``None``: not known yet) begins, ``done`` of them already done
        (a resumed run).
        """

    def update(self, done: int, total: int | None = None, **fields: str) -> None:
        """``done`` units of the open phase are done; ``fields`` are values shown beside the count, by label."""

    def end(self) -> None:
        """The open phase is finished (nothing happens when none is open)."""


class _Silent:
    """Ignores every report."""

    def start(self, phase: str, total: int | None = None, done: int = 0, unit: str = "step") -> None:
        pass

    def update(self, done: int, total: int | None = None, **fields: str) -> None:
        pass

    def end(self) -> None:
        pass


SILENT: ProgressReporter = _Silent()
"""The reporter of code that shows no progress."""


class Prefixed:
    """Passes reports on to ``reporter`` with every phase named ``"<prefix>: <phase>"``.

    The demo runs each command's function under the name of its step (``"2/7 pretrain: train"``).
    """

    def __init__(self, reporter: ProgressReporter, prefix: str) -> None:
        self.reporter, self.prefix = reporter, prefix

    def start(self, phase: str, total: int | None = None, done: int = 0, unit: str = "step") -> None:
        self.reporter.start(f"{self.prefix}: {phase}", total, done, unit)

    def update(self, done: int, total: int | None = None, **fields: str) -> None:
        self.reporter.update(done, total, **fields)

    def end(self) -> None:
        self.reporter.end()


def stage_callback(
    reporter: ProgressReporter, phases: Mapping[str, tuple[str, str]]
) -> Callable[[str, int, int], None]:
    """A ``progress(stage, done, total)`` callback (the prepare functions' kind) that reports each new
    stage as its own phase; ``phases`` maps a stage to its phase name and unit (unlisted: the stage's
    own name, in steps). The caller ends the last phase."""
    current: list[str] = []

    def report(stage: str, done: int, total: int) -> None:
        if current != [stage]:
            current[:] = [stage]
            phase, unit = phases.get(stage, (stage, "step"))
            reporter.start(phase, total, unit=unit)
        reporter.update(done, total)

    return report


def count_callback(reporter: ProgressReporter, phase: str, unit: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback (predict's, prepare_real's) that reports one phase,
    started at the first call (so that input checked before any work fails without a progress
    line); the caller ends it."""
    started: list[bool] = []

    def report(done: int, total: int) -> None:
        if not started:
            started.append(True)
            reporter.start(phase, total, unit=unit)
        reporter.update(done, total)

    return report


def step_callback(reporter: ProgressReporter, prefix: str) -> Callable[[str], None]:
    """An ``on_step(description)`` callback (the evaluation's kind) that starts the phase
    ``"<prefix>: <description>"`` of unknown length at each step; the caller ends the last one."""

    def report(description: str) -> None:
        reporter.start(f"{prefix}: {description}")

    return report
