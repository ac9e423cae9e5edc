"""Postprocessor: cleans one query scan's binary prediction after the model (numpy, no torch)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Postprocessor(ABC):
    """One class's prediction for a whole query scan -> the cleaned prediction.

    A post-processor only removes or adds voxels of that one class; it sees the scan's voxel
    ``spacing`` (z, y, x) in mm when it is known (None otherwise), so sizes can be physical.
    It must keep the shape, leave its input unchanged, keep an empty mask empty and be
    idempotent (applying it twice = once); the contract tests check this.
    """

    @abstractmethod
    def __call__(self, mask: np.ndarray, spacing: tuple[float, float, float] | None = None) -> np.ndarray:
        """``mask`` bool (Z, H, W) -> bool (Z, H, W)."""
