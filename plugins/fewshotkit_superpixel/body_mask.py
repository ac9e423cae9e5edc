"""The body mask of a slice or volume: intensity threshold, largest connected component, holes filled."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import measure


def auto_threshold(image: np.ndarray) -> float:
    """5 % of the way from the minimum to the 99th percentile: ~30-50 for raw T2 MR, ~13 for
    CT windowed to 0..255 (between air and fat)."""
    lo = float(np.min(image))
    hi = float(np.percentile(image, 99))
    return lo + 0.05 * (hi - lo)


def body_mask(image: np.ndarray, threshold: float | None = None, fill_structure: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the body in ``image`` ((H, W) or (Z, H, W)), of the same shape.

    ``threshold`` is in the image's intensity units (the reference uses ~50 for raw MR and
    1e-4 for CT in 0..255); None picks :func:`auto_threshold` over the whole array.
    ``fill_structure``: the connectivity of hole filling (SciPy's default when None).
    """
    if threshold is None:
        threshold = auto_threshold(image)
    foreground = image > threshold
    if not foreground.any():
        return foreground
    components = measure.label(foreground, connectivity=1)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    largest = components == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(largest, structure=fill_structure)
