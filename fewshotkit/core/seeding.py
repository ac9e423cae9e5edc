"""One seed for the process-wide random generators (python, numpy, torch); a training run's own
streams are :mod:`fewshotkit.training.streams`."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) from ``seed``."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
