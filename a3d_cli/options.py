"""The one vocabulary of options every command shares (spaCy's CLI keeps one too).

A command declares ``data_root: Optional[Path] = DataRootOption`` and so on, so that an option
has one name, one default and one help text everywhere. Choices are enums built from the
library's own tuples (:func:`choices`), so that ``--help`` lists them and Typer refuses others.
"""

from __future__ import annotations

import enum
from typing import Iterable

import typer

DataRootOption = typer.Option(
    None, "--data-root", help="Where named datasets live (default: $A3D_DATA_ROOT, else ./data)."
)
RunsRootOption = typer.Option(
    None, "--runs-root", help="Where runs are looked up and written (default: $A3D_RUNS_ROOT, else ./runs)."
)
DataAliasOption = typer.Option(None, "--data", hidden=True, help="The old name of --dataset.")
OverwriteOption = typer.Option(False, "--overwrite", help="Replace what --out holds instead of stopping.")
DeviceOption = typer.Option("auto", "--device", help="auto (CUDA when available), cpu or cuda[:N].")
SeedOption = typer.Option(0, "--seed", help="Random seed; the same seed gives the same result.")


def choices(name: str, values: Iterable[str]) -> type[enum.Enum]:
    """A ``str`` enum named ``name`` whose members are ``values`` (e.g. ``choices("Kind", KINDS)``):
    Typer lists them in ``--help`` and refuses any other value; ``member.value`` is the string."""
    return enum.Enum(name, {value: value for value in values}, type=str)


def dataset_or_alias(dataset: str | None, data: str | None) -> str | None:
    """``--dataset``, or the hidden old name ``--data`` where a command had it; both at once is an error."""
    if dataset is not None and data is not None:
        raise typer.BadParameter("give --dataset once (--data is its old name)")
    return dataset if dataset is not None else data
