"""What every command shares: the console, one-line errors, ``--device`` and ``--seed`` options."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from a3d_core.errors import A3DError

console = Console()
error_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

DeviceOption = typer.Option("auto", "--device", help="auto (CUDA when available), cpu or cuda[:N].")
SeedOption = typer.Option(0, "--seed", help="Random seed; the same seed gives the same result.")

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
