"""The one vocabulary of options every command shares (spaCy's CLI keeps one too).

A command declares ``data_root: Optional[Path] = DataRootOption`` and so on, so that an option
has one name, one default and one help text everywhere; ``--dataset`` and ``--out`` come from
:func:`dataset_option` and :func:`out_option`, whose help a command extends with what they mean
to it. Choices are enums built from the library's own tuples (:func:`choices`), so that
``--help`` lists them and Typer refuses others. An option renamed keeps its old name as a hidden
alias (:func:`given_once`).
"""

from __future__ import annotations

import enum
from typing import Any, Iterable, TypeVar

import typer

from a3d_core.model.asm import DEFAULT_KIND, KINDS
from a3d_core.pipelines.completers import UNKNOWN_CATEGORY

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

T = TypeVar("T")


def dataset_option(default: Any = None, meaning: str = "") -> Any:
    """``--dataset``: a prepared dataset by folder or name; ``meaning`` (appended to the help) says
    what the command does with it, or its default. ``...`` as ``default`` makes it required."""
    described = "A dataset written by `a3d prepare`: its folder, or its name under the data root."
    return typer.Option(default, "--dataset", help=f"{described} {meaning}".strip())


def out_option(default: Any, holds: str) -> Any:
    """``--out`` (``-o``): the folder a command writes into; ``holds`` (the help) says what it writes
    there. ``...`` as ``default`` makes it required."""
    return typer.Option(default, "--out", "-o", help=holds)


def choices(name: str, values: Iterable[str]) -> type[enum.Enum]:
    """A ``str`` enum named ``name`` whose members are ``values`` (e.g. ``choices("Kind", KINDS)``):
    Typer lists them in ``--help`` and refuses any other value; ``member.value`` is the string."""
    return enum.Enum(name, {value: value for value in values}, type=str)


def given_once(value: T | None, alias_value: T | None, name: str, alias: str) -> T | None:
    """The value of option ``name``, or of its hidden old name ``alias``; both at once is a usage error."""
    if value is not None and alias_value is not None:
        raise typer.BadParameter(f"give {name} once ({alias} is its old name)")
    return value if value is not None else alias_value


def dataset_or_alias(dataset: str | None, data: str | None) -> str | None:
    """``--dataset``, or the hidden old name ``--data`` where a command had it; both at once is an error."""
    return given_once(dataset, data, "--dataset", "--data")


Kind = choices("Kind", KINDS)
KIND_HELP = (
    "Stage 2: a3d (mesh + viewpoint + renderer + edge refine, the paper's), a3d-no-refine (ablation), 2d (2D mask "
    "decoder baseline), 2d-no-refine, 2d-unet (U-Net decoder, about A3D's active parameters), shapedict (K-means "
    "dictionary of training masks retrieved by the visible mask, then the edge refine), shapedict-no-refine."
)


def model_option(meaning: str = "") -> Any:
    """``--model``: the stage-2 kind, :data:`~a3d_core.model.asm.DEFAULT_KIND` unless given; ``meaning``
    (appended to the help) says what the command does with it."""
    return typer.Option(DEFAULT_KIND, "--model", help=f"{KIND_HELP} {meaning}".strip())


UnknownCategory = choices("UnknownCategory", UNKNOWN_CATEGORY)
UnknownCategoryOption = typer.Option(
    "predict",
    "--unknown-category",
    help="An instance whose category the checkpoint has no shape decoder for (not the same name, not mapped; no "
    "category at all, as from SAM): predict (the decoder of the class its classification branch predicts), visible "
    "(keep its visible mask as the amodal mask) or refuse (stop, naming the categories).",
)
