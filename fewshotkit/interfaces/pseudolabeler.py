"""PseudoLabeler: turns unlabelled images into segment ids for self-supervision."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np


class PseudoLabeler(ABC):
    """Segments an image into pseudolabel ids without manual labels.

    ``ndim`` says what one call receives: 2 -> a slice ``(H, W)``; 3 -> a volume ``(Z, H, W)``
    (``spacing`` (z, y, x) mm is then passed too). The result has the input's shape, dtype
    int32, 0 = not labelled (e.g. outside the body), segments numbered 1..K without gaps
    (per slice for 2D pseudolabelers, per volume for 3D ones).

    Implementations must be picklable: they run in worker processes.
    """

    ndim: ClassVar[int] = 2

    @abstractmethod
    def __call__(self, image: np.ndarray, spacing: tuple[float, ...] | None = None) -> np.ndarray:
        """``image`` float ``(H, W)`` or ``(Z, H, W)`` -> int32 ids of the same shape."""

    def params(self) -> dict[str, Any]:
        """The parameters that define the output; they name the stored pseudolabel set."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}
