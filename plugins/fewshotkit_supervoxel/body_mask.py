"""The body mask of a volume: one intensity threshold, the largest 3D component, holes filled per slice."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from fewshotkit_superpixel.body_mask import body_mask

# fills holes slice by slice: a cavity open at the volume's top or bottom (lungs) is still filled
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def body_mask_3d(volume: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Boolean (Z, H, W) body mask of ``volume`` (Z, H, W); empty when nothing exceeds the threshold.

    ``threshold`` is in the volume's intensity units; None picks the superpixel plugin's
    :func:`~fewshotkit_superpixel.body_mask.auto_threshold` over the whole volume, so every
    slice is cut at the same level.
    """
    return body_mask(volume, threshold, fill_structure=_IN_PLANE)
