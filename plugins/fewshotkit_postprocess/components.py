"""3D connected-component post-processors (SciPy labelling); masks are bool (Z, H, W)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from fewshotkit import FewshotkitError
from fewshotkit.interfaces.postprocessor import Postprocessor, SupportPostprocessor

UNITS = ("voxels", "mm3")
AXES = ("yx", "zyx")


def _structure(connectivity: int, name: str) -> np.ndarray:
    if connectivity not in (1, 2, 3):
        raise FewshotkitError(
            f"post-processor '{name}': connectivity must be 1 (faces), 2 (+ edges) or 3 (+ corners), "
            f"got {connectivity!r}"
        )
    return ndimage.generate_binary_structure(3, connectivity)


def _components(mask: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels int32 (Z, H, W) with 0 = background, voxel count of component k at index k - 1)."""
    labels, count = ndimage.label(np.asarray(mask, dtype=bool), structure=structure)
    sizes = ndimage.sum_labels(np.ones(labels.shape), labels, index=np.arange(1, count + 1))
    return labels, np.asarray(sizes, dtype=np.int64)


class LargestComponent(Postprocessor):
    """Keep the largest 3D connected component (ties: the first in scan order)."""

    def __init__(self, connectivity: int = 3) -> None:
        self.structure = _structure(connectivity, "largest-component")

    def __call__(self, mask: np.ndarray, spacing: tuple[float, float, float] | None = None) -> np.ndarray:
        labels, sizes = _components(mask, self.structure)
        if sizes.size == 0:
            return np.zeros(labels.shape, dtype=bool)
        return labels == int(np.argmax(sizes)) + 1


class MinSize(Postprocessor):
    """Remove 3D connected components smaller than ``min_size`` voxels or mm^3 (``unit``).

    ``unit="mm3"`` converts with the scan's voxel spacing, so one threshold fits scans of any
    resolution; it is an error when the spacing is unknown.
    """

    def __init__(self, min_size: float = 100.0, unit: str = "voxels", connectivity: int = 3) -> None:
        if not float(min_size) >= 0:
            raise FewshotkitError(f"post-processor 'min-size': min_size must be >= 0, got {min_size!r}")
        if unit not in UNITS:
            raise FewshotkitError(f"post-processor 'min-size': unit must be one of {', '.join(UNITS)}, got {unit!r}")
        self.min_size = float(min_size)
        self.unit = unit
        self.structure = _structure(connectivity, "min-size")

    def __call__(self, mask: np.ndarray, spacing: tuple[float, float, float] | None = None) -> np.ndarray:
        labels, sizes = _components(mask, self.structure)
        if self.unit == "mm3":
            if spacing is None:
                raise FewshotkitError(
                    "post-processor 'min-size' with unit='mm3' needs the scan's voxel spacing, which is unknown "
                    "here; use unit='voxels'"
                )
            sizes = sizes * float(np.prod(spacing))
        keep = np.flatnonzero(sizes >= self.min_size) + 1
        return np.isin(labels, keep)


class ZContinuity(Postprocessor):
    """Drop every slice outside the z-span of the largest 3D component.

    The prediction's slices then form one contiguous run around the main component: isolated
    detections above or below the organ go, while slices inside the span are kept whole.
    """

    def __init__(self, connectivity: int = 3) -> None:
        self.structure = _structure(connectivity, "z-continuity")

    def __call__(self, mask: np.ndarray, spacing: tuple[float, float, float] | None = None) -> np.ndarray:
        mask = np.asarray(mask, dtype=bool)
        labels, sizes = _components(mask, self.structure)
        out = np.zeros(mask.shape, dtype=bool)
        if sizes.size == 0:
            return out
        main = int(np.argmax(sizes)) + 1
        span = ndimage.find_objects(labels, max_label=main)[main - 1][0]
        out[span] = mask[span]
        return out


def _relative_position(coords: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Voxel coordinates (..., 3) (z, y, x) -> position relative to the scan's extent, in (0, 1)."""
    return (np.asarray(coords, dtype=np.float64) + 0.5) / np.asarray(shape, dtype=np.float64)


class NearestToSupport(SupportPostprocessor):
    """Keep the 3D component whose centre lies nearest the support's mask of the class.

    Candidates are the components with at least ``min_fraction`` of the largest one's voxels, so
    specks near the support's position do not win. Centres are the mean voxel positions relative
    to each scan's extent (support and query may differ in field of view and slice count), over
    ``axes``: ``"yx"`` in-plane (default) or ``"zyx"`` with the relative slice position too. Where
    the largest component is the wrong one of two mirrored organs (the other kidney), this keeps
    the one on the support's side; with ``min_fraction=1`` it is ``largest-component``.
    """

    def __init__(self, min_fraction: float = 0.5, axes: str = "yx", connectivity: int = 3) -> None:
        if not 0.0 < float(min_fraction) <= 1.0:
            raise FewshotkitError(
                f"post-processor 'nearest-to-support': min_fraction must be in (0, 1], got {min_fraction!r}"
            )
        if axes not in AXES:
            raise FewshotkitError(f"post-processor 'nearest-to-support': axes must be one of {', '.join(AXES)}, "
                                  f"got {axes!r}")
        self.min_fraction = float(min_fraction)
        self.axes = slice(1, 3) if axes == "yx" else slice(0, 3)
        self.structure = _structure(connectivity, "nearest-to-support")

    def __call__(self, mask: np.ndarray, spacing: tuple[float, float, float] | None = None,
                 support: np.ndarray | None = None) -> np.ndarray:
        if support is None:
            raise FewshotkitError("post-processor 'nearest-to-support' needs the support's mask of the class")
        labels, sizes = _components(mask, self.structure)
        if sizes.size == 0:
            return np.zeros(labels.shape, dtype=bool)
        support = np.asarray(support, dtype=bool)
        if not support.any():
            return labels == int(np.argmax(sizes)) + 1
        candidates = np.flatnonzero(sizes >= self.min_fraction * sizes.max()) + 1
        centres = np.asarray(ndimage.center_of_mass(np.ones(labels.shape), labels, candidates)).reshape(-1, 3)
        target = _relative_position(np.argwhere(support).mean(axis=0), support.shape)[self.axes]
        distance = np.linalg.norm(_relative_position(centres, labels.shape)[:, self.axes] - target, axis=1)
        return labels == int(candidates[int(np.argmin(distance))])
