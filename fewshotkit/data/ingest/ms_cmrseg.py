"""The ``ms-cmrseg`` preset: MS-CMRSeg 2019 bSSFP in the image_N / label_N NIfTI layout."""

from __future__ import annotations

import os
from pathlib import Path

from fewshotkit.data.ingest.common import ScanPrep
from fewshotkit.data.ingest.nifti import ingest_nifti_pairs

CLASSES = {1: "LV-MYO", 2: "LV-BP", 3: "RV"}
# original challenge codes, and the 1/2/3 codes of copies that were already remapped
CODES = {200.0: 1, 500.0: 2, 600.0: 3, 1.0: 1, 2.0: 2, 3.0: 3}


def ingest_ms_cmrseg(src: str | os.PathLike, out: str | os.PathLike, *, clip_percentile: float = 99.5,
                     limit: int | None = None, quiet: bool = False, overwrite: bool = False) -> Path:
    """Clip the top 0.5 %, labels 200/500/600 -> LV-MYO/LV-BP/RV, centre crop or pad to 256 x 256."""
    return ingest_nifti_pairs(
        src, out, preset="ms-cmrseg", image_glob="image_*.nii.gz", label_glob="label_*.nii.gz",
        classes=CLASSES, codes=CODES, modality="MR", prep=ScanPrep(clip_percentile, "always", target_size=256),
        label_hint=" (MS-CMRSeg uses 200, 500, 600)",
        limit=limit, quiet=quiet, overwrite=overwrite,
    )
