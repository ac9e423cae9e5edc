"""The ``chaos-t2`` preset: CHAOS T2-SPIR in the preprocessed image_N / label_N NIfTI layout."""

from __future__ import annotations

import os
from pathlib import Path

from fewshotkit.data.ingest.common import ScanPrep
from fewshotkit.data.ingest.nifti import ingest_nifti_pairs

CLASSES = {1: "liver", 2: "right kidney", 3: "left kidney", 4: "spleen"}


def ingest_chaos_t2(src: str | os.PathLike, out: str | os.PathLike, *, clip_mode: str = "auto",
                    clip_percentile: float = 99.5, limit: int | None = None, quiet: bool = False,
                    overwrite: bool = False) -> Path:
    """image_{pid}.nii.gz / label_{pid}.nii.gz -> store; volumes in numeric pid order.

    ``clip_mode`` "auto" clips above the 99.5th percentile unless a volume already looks
    clipped (>= 0.1 % of voxels exactly at its maximum): the common preprocessed copy is, so it
    is not clipped twice. "always" clips again, "never" does not clip.
    """
    return ingest_nifti_pairs(
        src, out, preset="chaos-t2", image_glob="image_*.nii.gz", label_glob="label_*.nii.gz",
        classes=CLASSES, codes={float(v): v for v in CLASSES}, modality="MR",
        prep=ScanPrep(clip_percentile, clip_mode, target_size=256), limit=limit, quiet=quiet, overwrite=overwrite,
    )
