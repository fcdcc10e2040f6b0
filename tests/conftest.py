"""Every test finds runs only where it puts them: the runs root is a fresh folder per test, never
the ``./runs`` (or ``$A3D_RUNS_ROOT``) of whoever runs the suite (``a3d finetune`` starts from the
newest pretraining run there)."""

import pytest


@pytest.fixture(autouse=True)
def isolated_runs_root(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A3D_RUNS_ROOT", str(tmp_path_factory.mktemp("runs")))
