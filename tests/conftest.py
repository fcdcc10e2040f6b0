"""Shared test set-up.

- Every test finds runs only where it puts them: the runs root is a fresh folder per test, never
  the ``./runs`` (or ``$A3D_RUNS_ROOT``) of whoever runs the suite (``a3d finetune`` starts from
  the newest pretraining run there).
- Tests marked ``cuda`` run only where torch sees a CUDA device (``pytest -m cuda`` selects them).
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def isolated_runs_root(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A3D_RUNS_ROOT", str(tmp_path_factory.mktemp("runs")))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
