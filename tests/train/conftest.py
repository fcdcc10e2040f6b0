"""Tiny tensors on a shared 2-core machine: one intra-op thread is much faster than two."""

import torch

torch.set_num_threads(1)
