"""What every command shares: the console, one-line errors (options: :mod:`a3d_cli.options`),
and the announcement of what a command chose by default (a run folder, the newest checkpoint)."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from a3d_core.errors import A3DError
from a3d_core.train.run_folders import dataset_name, fresh_run_folder, latest_run_folder, newest_checkpoint, runs_root

console = Console()
error_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


EXIT_FAILURE = 1


def fail(message: str, code: int = EXIT_FAILURE) -> None:
    """Print ``message`` on one line to stderr and exit with ``code``."""
    error_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def user_errors(function: F) -> F:
    """Turn :class:`A3DError` (bad input the user can fix) into a one-line message and exit 1."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except A3DError as error:
            fail(str(error))
        except KeyboardInterrupt:
            fail("interrupted; nothing half-written was left behind", code=130)

    return wrapper  # type: ignore[return-value]


def announce(message: str) -> None:
    """Print what a command chose by default, at its start (once per ``torchrun`` launch: rank 0)."""
    if os.environ.get("RANK", "0") == "0":
        console.print(message, highlight=False, soft_wrap=True)


def default_run_folder(name: str, resume: bool, root: Path | None = None) -> Path:
    """The run folder of a training command without ``--out``, announced: ``<runs root>/<name>``, or
    the next numbered one when that holds a run; with ``resume`` the latest that holds one
    (:mod:`a3d_core.train.run_folders`; ``root``: ``--runs-root``)."""
    folder = latest_run_folder(name, root) if resume else fresh_run_folder(name, root)
    first = runs_root(root) / name
    if resume:
        reason = f"--resume: the latest of {first}, {first.name}-2, ... that holds a run"
    elif folder != first:
        reason = f"{first} holds a run already; --resume continues the latest"
    else:
        reason = "the default"
    announce(f"run folder: {folder} ({reason}; --out FOLDER to choose)")
    return folder


def default_checkpoint(
    kind: str,
    root: Path | None = None,
    dataset: str | None = None,
    instead: str = "--checkpoint FILE",
) -> Path:
    """The checkpoint of the newest run of ``kind`` (for ``dataset``) under the runs root, announced
    (:func:`a3d_core.train.run_folders.newest_checkpoint`, whose error says how to get one)."""
    checkpoint = newest_checkpoint(kind, root, dataset, instead)
    which = f" for {dataset_name(dataset)}" if dataset is not None else ""
    announce(
        f"checkpoint: {checkpoint}, the newest {kind} run{which} under {runs_root(root)} (--checkpoint FILE to choose)"
    )
    return checkpoint
