"""Checkpoints: weights-only round trip, RNG state, clear errors for bad or foreign files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from a3d_core.errors import InputError, TrainingError
from a3d_core.train.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from a3d_core.train.rng import capture_rng_state, isolated_rng, restore_rng_state
from tests.train.toys import ToyAmodalModel


def draws() -> tuple:
    return (
        random.random(),
        random.gauss(0, 1),
        float(np.random.rand()),
        float(np.random.randn()),
        torch.rand(3).tolist(),
    )


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    np.random.randn()  # and one in NumPy's
    state = capture_rng_state()
    expected = draws()
    save_checkpoint({"rng": state}, tmp_path / "rng.pt")
    restored = torch.load(tmp_path / "rng.pt", weights_only=True)["rng"]
    restore_rng_state(restored)
    assert draws() == expected


def test_isolated_rng_leaves_the_generators_as_they_were():
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    with isolated_rng():
        torch.rand(50)
        np.random.rand(50)
    assert torch.equal(torch.rand(2), expected)


def test_model_optimizer_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = ToyAmodalModel(["cube"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.position.grad = torch.ones_like(model.position)
    optimizer.step()
    save_checkpoint(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "model_config": model.config(),
            "category_names": ["cube"],
            "scheduler": {},
            "rng": capture_rng_state(),
            "step": 1,
            "epoch": 0,
            "config": {"train": {"lr": 1e-3}},
        },
        tmp_path / "last.pt",
    )
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    torch.manual_seed(1)
    fresh = ToyAmodalModel(["cube"])
    load_model_state(fresh, checkpoint, tmp_path / "last.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    fresh_optimizer.load_state_dict(checkpoint["optimizer"])
    assert torch.equal(
        fresh_optimizer.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )
    assert checkpoint["category_names"] == ["cube"] and checkpoint["step"] == 1


def test_missing_corrupt_and_foreign_files_raise_input_errors_naming_the_file(tmp_path):
    with pytest.raises(InputError, match=r"nothing\.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "nothing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a zip archive at all")
    with pytest.raises(InputError, match=r"corrupt\.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "corrupt.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(InputError, match=r"list\.pt: not an a3d training checkpoint \(holds a list"):
        load_checkpoint(tmp_path / "list.pt")
    torch.save({"model": {}}, tmp_path / "partial.pt")
    with pytest.raises(InputError, match=r"partial\.pt: not an a3d training checkpoint \(missing optimizer"):
        load_checkpoint(tmp_path / "partial.pt")


def test_a_pickled_object_is_refused_by_weights_only_loading(tmp_path):
    torch.save({"model": {}, "payload": ToyAmodalModel}, tmp_path / "unsafe.pt")
    with pytest.raises(
        InputError,
        match=r"unsafe\.pt: not a readable checkpoint \(it holds objects other than tensors and plain containers; "
        r"torch.load\(weights_only=True\) refused it\)$",
    ):
        load_checkpoint(tmp_path / "unsafe.pt", required_keys=("model",))


def test_a_checkpoint_of_another_architecture_is_named_as_such(tmp_path):
    small, wide = ToyAmodalModel(["cube"], hidden=4), ToyAmodalModel(["cube"], hidden=6)
    checkpoint = {"model": small.state_dict(), "model_config": small.config()}
    with pytest.raises(TrainingError, match=r"small\.pt: checkpoint of another architecture \(hidden: 4 -> 6\)"):
        load_model_state(wide, checkpoint, tmp_path / "small.pt")


def test_a_state_dict_that_does_not_fit_names_the_file(tmp_path):
    class NoConfig(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.layer = torch.nn.Linear(width, 1)

    with pytest.raises(TrainingError, match=r"other\.pt: checkpoint does not fit this model \(.*size mismatch"):
        load_model_state(NoConfig(3), {"model": NoConfig(2).state_dict()}, tmp_path / "other.pt")
