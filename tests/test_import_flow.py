"""The import walk: data flows one way through a3d_core, and no two of its modules import each other.

The layers, lowest first (DESIGN.md, "The house"): foundations (``geometry``, ``boxes``, ``errors``,
``runtime``, ...), ``data`` (formats -> records -> datasets), ``model``, predictions and ``eval`` /
``io``, then ``train``, ``pipelines`` and ``experiments``, and ``a3d_cli`` above them all. Every
module is parsed, never imported, so the walk is fast and sees every arrow: imports inside
functions and under ``TYPE_CHECKING`` count like the others (a lazy import is still an arrow).

An arrow goes to the module named: ``from a.b import c`` points at ``a.b.c`` when that is a module,
else at ``a.b``. Importing ``a.b.c`` also runs the package ``a.b``'s ``__init__``, but that is no
arrow of the importer's own, so it is not counted; nor are modules named in strings (the layout
catalog's ``importlib.import_module``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
PACKAGES = ("a3d_core", "a3d_cli")

FOUNDATIONS = ("errors", "geometry", "boxes", "runtime", "progress")
"""The ground floor: modules every room may use, which use no room."""

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "a3d_core.eval": ("a3d_core.train", "a3d_core.pipelines", "a3d_core.experiments"),
    "a3d_core.train": ("a3d_core.pipelines", "a3d_core.experiments"),
    "a3d_core.model": (
        "a3d_core.data",
        "a3d_core.train",
        "a3d_core.eval",
        "a3d_core.pipelines",
        "a3d_core.experiments",
    ),
    "a3d_core.data": (
        "a3d_core.model",
        "a3d_core.train",
        "a3d_core.eval",
        "a3d_core.pipelines",
        "a3d_core.experiments",
    ),
    "a3d_core.io": (
        "a3d_core.model",
        "a3d_core.train",
        "a3d_core.eval",
        "a3d_core.pipelines",
        "a3d_core.experiments",
    ),
    "a3d_core.pipelines": ("a3d_core.experiments",),
    "a3d_core": ("a3d_cli",),
    **{
        f"a3d_core.{foundation}": tuple(
            f"a3d_core.{room}" for room in ("io", "data", "model", "train", "eval", "pipelines", "experiments")
        )
        for foundation in FOUNDATIONS
    },
}
"""Importer prefix -> the prefixes it must not import (a prefix covers the package and everything in it)."""


@dataclass(frozen=True)
class Arrow:
    """``importer`` (a module of ``file``) imports ``imported`` at ``line``."""

    importer: str
    imported: str
    file: str
    line: int

    def describe(self) -> str:
        return f"{self.file}:{self.line} imports {self.imported}"


def module_names(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``packages`` under ``root``."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _targets(node: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    """The modules of ``packages`` that an import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def import_arrows(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[Arrow]:
    """Every import, at any depth of every module of ``packages``, of a module of ``packages``."""
    modules = module_names(root, packages)
    arrows = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            for target in _targets(node, module, is_package, modules):
                if any(_within(target, package) for package in packages) and target != module:
                    arrows.append(Arrow(module, target, path.relative_to(root).as_posix(), node.lineno))
    return arrows


def forbidden_arrows(arrows: list[Arrow], rules: dict[str, tuple[str, ...]] = FORBIDDEN) -> list[str]:
    """One line per arrow that goes against the flow (naming the file, line and imported module)."""
    found = []
    for arrow in arrows:
        for importer, banned in rules.items():
            if _within(arrow.importer, importer) and any(_within(arrow.imported, prefix) for prefix in banned):
                found.append(f"{arrow.describe()} ({importer} must not import {', '.join(banned)})")
                break
    return found


def import_cycles(arrows: list[Arrow], package: str = "a3d_core") -> list[str]:
    """One line per circle of imports among the modules of ``package``: each arrow of one circle."""
    edges: dict[str, dict[str, Arrow]] = {}
    for arrow in arrows:
        if _within(arrow.importer, package) and _within(arrow.imported, package):
            edges.setdefault(arrow.importer, {}).setdefault(arrow.imported, arrow)
    cycles, reported = [], set()
    for start in sorted(edges):
        path = _path_back(edges, start)
        if path is None:
            continue
        members = frozenset(arrow.importer for arrow in path)
        if members not in reported:
            reported.add(members)
            cycles.append("; ".join(arrow.describe() for arrow in path))
    return cycles


def _path_back(edges: dict[str, dict[str, Arrow]], start: str) -> list[Arrow] | None:
    """The arrows of a shortest way from ``start`` back to itself (breadth first), or None."""
    came_by: dict[str, Arrow] = {}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for target, arrow in sorted(edges.get(module, {}).items()):
                if target == start:
                    path = [arrow]
                    while path[0].importer != start:
                        path.insert(0, came_by[path[0].importer])
                    return path
                if target not in came_by:
                    came_by[target] = arrow
                    following.append(target)
        frontier = following
    return None


# ------------------------------------------------------------------------------------- the tree
@pytest.fixture(scope="module")
def arrows() -> list[Arrow]:
    return import_arrows(REPOSITORY)


def test_the_walk_sees_the_package(arrows: list[Arrow]) -> None:
    importers = {arrow.importer for arrow in arrows}
    assert {"a3d_core.eval.evaluate", "a3d_core.train.loop", "a3d_cli.__main__"} <= importers


def test_imports_follow_the_flow(arrows: list[Arrow]) -> None:
    problems = forbidden_arrows(arrows)
    assert not problems, "imports against the flow:\n" + "\n".join(problems)


def test_no_module_of_a3d_core_imports_itself_through_others(arrows: list[Arrow]) -> None:
    cycles = import_cycles(arrows)
    assert not cycles, "circles of imports:\n" + "\n".join(cycles)


# ----------------------------------------------------------------------------- the checker itself
def write_modules(root: Path, sources: dict[str, str]) -> None:
    for name, source in sources.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")


def test_the_checker_reports_forbidden_arrows_lazy_or_not_and_a_type_checking_circle(tmp_path: Path) -> None:
    write_modules(
        tmp_path,
        {
            "a3d_core/__init__.py": "",
            "a3d_core/eval/__init__.py": "",
            "a3d_core/eval/scores.py": "def score():\n    from a3d_core.train.loop import step\n    return step\n",
            "a3d_core/train/__init__.py": "",
            "a3d_core/train/loop.py": "from a3d_core.runtime import device\n",
            "a3d_core/data/__init__.py": "",
            "a3d_core/data/records.py": "from . import checks\n",
            "a3d_core/data/checks.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from a3d_core.data.records import Record\n"
            ),
            "a3d_core/runtime.py": "import os\n",
            "a3d_core/io/__init__.py": "",
            "a3d_core/io/show.py": "import a3d_cli.progress\n",
            "a3d_cli/__init__.py": "",
            "a3d_cli/progress.py": "",
            "a3d_cli/app.py": "from a3d_core.train import loop\n",
        },
    )
    arrows = import_arrows(tmp_path)

    assert forbidden_arrows(arrows) == [
        "a3d_core/eval/scores.py:2 imports a3d_core.train.loop "
        "(a3d_core.eval must not import a3d_core.train, a3d_core.pipelines, a3d_core.experiments)",
        "a3d_core/io/show.py:1 imports a3d_cli.progress (a3d_core must not import a3d_cli)",
    ]
    assert import_cycles(arrows) == [
        "a3d_core/data/checks.py:3 imports a3d_core.data.records; "
        "a3d_core/data/records.py:1 imports a3d_core.data.checks"
    ]


def test_the_checker_passes_a_tree_that_flows_one_way(tmp_path: Path) -> None:
    write_modules(
        tmp_path,
        {
            "a3d_core/__init__.py": "",
            "a3d_core/data/__init__.py": "",
            "a3d_core/data/records.py": "from a3d_core.errors import InputError\n",
            "a3d_core/errors.py": "",
            "a3d_core/eval/__init__.py": "",
            "a3d_core/eval/scores.py": "import a3d_core.data.records\nfrom a3d_core import errors\n",
            "a3d_cli/__init__.py": "",
            "a3d_cli/app.py": "from a3d_core.eval.scores import score\n",
        },
    )
    arrows = import_arrows(tmp_path)

    assert {(arrow.importer, arrow.imported) for arrow in arrows} == {
        ("a3d_core.data.records", "a3d_core.errors"),
        ("a3d_core.eval.scores", "a3d_core.data.records"),
        ("a3d_core.eval.scores", "a3d_core.errors"),
        ("a3d_cli.app", "a3d_core.eval.scores"),
    }
    assert forbidden_arrows(arrows) == [] and import_cycles(arrows) == []
