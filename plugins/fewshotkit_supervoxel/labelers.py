"""3D supervoxel pseudolabeler: scikit-image SLIC over a whole volume with its voxel spacing.

The spacing enters SLIC's spatial distance and its Gaussian pre-smoothing (``sigma_mm`` is in
mm on every axis), and the number of supervoxels follows from a target physical size
(``size_mm3``) over the body's physical volume, so a volume of thick slices gets supervoxels
that span fewer slices than the same voxels at a finer spacing. scikit-image places SLIC's
initial seeds in voxel units; the spacing-aware distance then pulls the supervoxels towards
physical compactness (on CHAOS-T2, 1.25 x 1.25 x 7.7 mm, a default supervoxel spans ~7 slices;
see docs/pseudolabels.md).
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
from skimage import segmentation

from fewshotkit import FewshotkitError
from fewshotkit.interfaces.pseudolabeler import PseudoLabeler

from fewshotkit_supervoxel.body_mask import body_mask_3d

DEFAULT_SIZE_MM3 = 60_000.0  # a mean of ~5000 voxels at 1.25 x 1.25 x 7.7 mm: ADNet's abdominal minimum size


def _number(name: str, value: Any, *, minimum: float, strict: bool, example: str) -> float:
    """``value`` as a finite float > ``minimum`` (``strict``) or >= it, else a one-line error."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum)
    if not ok:
        bound = "finite number" if minimum == -math.inf else f"number {'>' if strict else '>='} {minimum:g}"
        raise FewshotkitError(f"supervoxel: option '{name}' must be a {bound}, got {value!r} "
                              f"(e.g. --set {name}={example})")
    return float(value)


def _count(name: str, value: Any, example: str) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise FewshotkitError(f"supervoxel: option '{name}' must be an integer >= 1, got {value!r} "
                              f"(e.g. --set {name}={example})")
    return int(value)


def check_spacing(spacing: Any) -> tuple[float, float, float]:
    """(z, y, x) mm as three finite positive floats, else a one-line error."""
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise FewshotkitError(f"supervoxel needs the voxel spacing (z, y, x) in mm as three positive numbers, got "
                              f"{spacing!r}; re-ingest the store so that every volume records its spacing")
    return values  # type: ignore[return-value]


class Supervoxels(PseudoLabeler):
    """SLIC supervoxels of a volume inside its body mask.

    Options: ``size_mm3`` (target mean supervoxel volume in mm^3, default 60000) or
    ``n_segments`` (supervoxels per volume, instead of a size); ``compactness`` (SLIC's
    trade-off of intensity against distance, intensities scaled to 0..1 within the body);
    ``sigma_mm`` (Gaussian pre-smoothing in mm); ``max_num_iter`` (SLIC iterations);
    ``use_body_mask`` and ``body_threshold`` (intensity units; None = automatic).
    """

    ndim = 3

    def __init__(
        self,
        size_mm3: float | None = None,
        n_segments: int | None = None,
        compactness: float = 0.1,
        sigma_mm: float = 1.0,
        max_num_iter: int = 5,
        use_body_mask: bool = True,
        body_threshold: float | None = None,
    ) -> None:
        if size_mm3 is not None and n_segments is not None:
            raise FewshotkitError("supervoxel: give either size_mm3 or n_segments, not both "
                                  "(e.g. --set size_mm3=60000 or --set n_segments=250)")
        if n_segments is None:
            self.size_mm3: float | None = _number(
                "size_mm3", DEFAULT_SIZE_MM3 if size_mm3 is None else size_mm3, minimum=0, strict=True,
                example="60000")
            self.n_segments: int | None = None
        else:
            self.size_mm3 = None
            self.n_segments = _count("n_segments", n_segments, "250")
        self.compactness = _number("compactness", compactness, minimum=0, strict=True, example="0.1")
        self.sigma_mm = _number("sigma_mm", sigma_mm, minimum=0, strict=False, example="1.0")
        self.max_num_iter = _count("max_num_iter", max_num_iter, "5")
        if not isinstance(use_body_mask, bool):
            raise FewshotkitError(f"supervoxel: option 'use_body_mask' must be true or false, got {use_body_mask!r}")
        self.use_body_mask = use_body_mask
        self.body_threshold = None if body_threshold is None else _number(
            "body_threshold", body_threshold, minimum=-math.inf, strict=False, example="50")

    def params(self) -> dict[str, Any]:
        """The options that define the output (unset alternatives left out), for the set's name."""
        return {k: v for k, v in super().params().items() if v is not None}

    def __call__(self, image: np.ndarray, spacing: tuple[float, ...] | None = None) -> np.ndarray:
        """``image`` float (Z, H, W), ``spacing`` (z, y, x) mm -> int32 (Z, H, W): 0 outside the body,
        supervoxels 1..K without gaps."""
        volume = np.asarray(image, dtype=np.float32)
        if volume.ndim != 3:
            raise FewshotkitError(f"supervoxel takes a volume (Z, H, W), got shape {volume.shape}")
        if not np.isfinite(volume).all():
            raise FewshotkitError("the volume contains NaN or infinite values; fix the store (fewshotkit store check)")
        sz, sy, sx = check_spacing(spacing)
        if self.use_body_mask:
            mask = body_mask_3d(volume, self.body_threshold)
            if not mask.any():
                level = "the automatic threshold" if self.body_threshold is None else f"body_threshold={self.body_threshold:g}"
                raise FewshotkitError(f"supervoxel: the body mask is empty ({level} leaves no voxel); "
                                      f"lower body_threshold or set use_body_mask=false")
        else:
            mask = np.ones(volume.shape, dtype=bool)
        body_voxels = int(mask.sum())
        if self.n_segments is not None:
            wanted = self.n_segments
        else:
            assert self.size_mm3 is not None
            wanted = max(1, round(body_voxels * sz * sy * sx / self.size_mm3))
        labels = segmentation.slic(
            volume, n_segments=min(wanted, body_voxels), compactness=self.compactness, sigma=self.sigma_mm,
            spacing=(sz, sy, sx), max_num_iter=self.max_num_iter, mask=mask, channel_axis=None, start_label=1,
        )
        labels[~mask] = 0
        relabelled, _, _ = segmentation.relabel_sequential(labels)
        return relabelled.astype(np.int32)
