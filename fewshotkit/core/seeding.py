"""One seed for every random generator (python, numpy, torch, DataLoader workers)."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) from ``seed``."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_seed(base_seed: int, worker_id: int) -> int:
    """A distinct, reproducible seed per DataLoader worker."""
    return int(np.random.SeedSequence([base_seed, worker_id]).generate_state(1)[0])
