"""Device choice and seeding, shared by every command (``--device auto|cpu|cuda``, ``--seed``)."""

from __future__ import annotations

import random

import numpy as np
import torch

from a3d_core.errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda[:N]`` to a ``torch.device``; ``auto`` takes CUDA when there is one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
        return torch.device(name)
    raise InputError(f"--device {name}: expected one of {', '.join(DEVICE_CHOICES)}")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
