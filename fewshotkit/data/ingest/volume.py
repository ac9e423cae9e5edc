"""One scan the user brings (``fewshotkit segment``): read, preprocess like the presets, map back."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fewshotkit.data.ingest.common import (
    apply_inplane,
    check_label_values,
    check_pair,
    clip_top,
    crop_pad_op,
    load_nifti,
    nifti_to_zhw_affine,
)


@dataclass
class PreparedVolume:
    """``image`` float32 (Z, H, W) per-volume z-scored; ``label`` uint8 (Z, H, W) or None."""

    image: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray
    spacing: tuple[float, float, float]
    inplane: list[dict[str, Any]] = field(default_factory=list)
    header: bytes | None = None
    source: str = ""

    def to_nifti(self, array_zhw: np.ndarray):
        """A (Z, H, W) label-like array back on the source grid with the source affine and header."""
        from fewshotkit.data.store.geometry import zhw_to_nifti

        return zhw_to_nifti(array_zhw, self.image.shape, self.inplane, self.affine, self.header)


def z_score(image: np.ndarray) -> np.ndarray:
    """``image`` (float32) z-scored over the whole volume. The statistics are summed in float64:
    float32 sums depend on the voxel order, and a scan stored in another orientation must give the
    same model input."""
    mean, std = np.float32(image.mean(dtype=np.float64)), np.float32(image.std(dtype=np.float64) or 1.0)
    return ((image - mean) / std).astype(np.float32)


def load_nifti_volume(
    image_path: str | os.PathLike,
    label_path: str | os.PathLike | None = None,
    *,
    target_size: int | None = 256,
    clip_percentile: float | None = 99.5,
) -> PreparedVolume:
    """Read a NIfTI scan (and label) as (Z, H, W): clip the top intensities unless the scan already
    looks clipped, centre crop/pad to ``target_size``, per-volume z-score."""
    img, image = load_nifti(Path(image_path))
    label = None
    if label_path is not None:
        _, label = load_nifti(Path(label_path))
    check_pair(image, label, Path(image_path), Path(label_path) if label_path else None)
    if label is not None and label_path is not None:
        check_label_values(label, Path(label_path))  # ingest's rule: integer codes in 0..255
    image, _ = clip_top(image, clip_percentile, "auto")
    ops = [crop_pad_op(image.shape[1:], target_size)] if target_size and image.shape[1:] != (target_size, target_size) else []
    image = z_score(apply_inplane(image.astype(np.float32), ops, is_label=False))
    if label is not None:
        label = apply_inplane(label.astype(np.uint8), ops, is_label=True)
    affine, spacing, header = nifti_to_zhw_affine(img)
    return PreparedVolume(image=image, label=label, affine=affine, spacing=spacing, inplane=ops,
                          header=header, source=str(image_path))
