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

    #: True for a :class:`SupportPostprocessor`: ``__call__`` is also given the support's mask.
    uses_support: bool = False

    @abstractmethod
    def __call__(self, mask: np.ndarray, spacing: tuple[float, float, float] | None = None) -> np.ndarray:
        """``mask`` bool (Z, H, W) -> bool (Z, H, W)."""


class SupportPostprocessor(Postprocessor):
    """A post-processor that also sees the labelled support: ``support`` is the support scan's mask
    of the same class, bool (Zs, Hs, Ws). Its slices may differ in number and size from the
    query's, so compare positions relative to each scan's extent. Every caller (eval, bench,
    segment, the Python API) has a support and passes it."""

    uses_support = True

    @abstractmethod
    def __call__(self, mask: np.ndarray, spacing: tuple[float, float, float] | None = None,
                 support: np.ndarray | None = None) -> np.ndarray:
        """``mask`` bool (Z, H, W), ``support`` bool (Zs, Hs, Ws) -> bool (Z, H, W)."""
