"""The ``synapse-ct`` preset: raw Synapse/BTCV abdominal CT (HU) in NIfTI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from fewshotkit.core.errors import DataError
from fewshotkit.data.ingest.common import (
    apply_inplane,
    border_crop_op,
    check_pair,
    load_nifti,
    map_labels,
    nifti_to_zhw_affine,
    pair_by_pattern,
    require_dir,
    resize_op,
    write_store,
)
from fewshotkit.data.store.writer import StoreHeader, VolumeRecord

CLASSES = {
    1: "spleen", 2: "right kidney", 3: "left kidney", 4: "gallbladder", 5: "esophagus", 6: "liver",
    7: "stomach", 8: "aorta", 9: "inferior vena cava", 10: "portal and splenic vein", 11: "pancreas",
    12: "right adrenal gland", 13: "left adrenal gland",
}
WINDOW = (-125.0, 275.0)
BORDER = 32


def _layout(folder: Path) -> tuple[Path, str, str]:
    """Accept RawData/Training/{img,label}, Training/{img,label} or {img,label} under ``folder``."""
    for base in (folder, folder / "Training", folder / "RawData" / "Training"):
        if (base / "img").is_dir() and (base / "label").is_dir():
            return base, "img/img*.nii.gz", "label/label*.nii.gz"
    return folder, "img*.nii.gz", "label*.nii.gz"


def synapse_record(vid: str, image_path: Path, label_path: Path, size: int) -> VolumeRecord:
    img, hu = load_nifti(image_path)
    _, label = load_nifti(label_path)
    check_pair(hu, label, image_path, label_path)
    label_u8 = map_labels(label, {float(v): v for v in CLASSES}, label_path)
    lo, hi = WINDOW
    windowed = ((np.clip(hu, lo, hi) - lo) / (hi - lo) * 255.0).astype(np.float32)
    h0, w0 = hu.shape[1:]
    if min(h0, w0) <= 2 * BORDER:
        raise DataError(f"'{image_path}' is only {h0} x {w0} in-plane; the {BORDER}px border crop needs more")
    ops = [border_crop_op((h0, w0), BORDER), resize_op((h0 - 2 * BORDER, w0 - 2 * BORDER), size)]
    affine, spacing, header = nifti_to_zhw_affine(img)
    return VolumeRecord(
        vid=vid,
        image=apply_inplane(windowed, ops, is_label=False),
        label=apply_inplane(label_u8, ops, is_label=True),
        patient=vid,
        source_image=str(image_path.resolve()),
        source_label=str(label_path.resolve()),
        spacing=(spacing[0], spacing[1] * (h0 - 2 * BORDER) / size, spacing[2] * (w0 - 2 * BORDER) / size),
        original_shape=tuple(int(s) for s in hu.shape),  # type: ignore[arg-type]
        affine=affine,
        inplane=ops,
        preprocessing={"window_hu": list(WINDOW), "scaled_to": [0, 255], "border_crop": BORDER},
        nifti_header=header,
        real_affine=True,
    )


def ingest_synapse_ct(src: str | os.PathLike, out: str | os.PathLike, *, size: int = 256,
                      limit: int | None = None, quiet: bool = False, overwrite: bool = False) -> Path:
    """Window [-125, 275] HU -> 0..255, crop a 32 px border, resize to ``size``; z-score is global
    over the training fold (per-volume sums are stored; SliceStore.normalize_with(fold.train))."""
    base, image_glob, label_glob = _layout(require_dir(src))
    pairs = pair_by_pattern(base, image_glob, label_glob)
    if limit is not None:
        pairs = pairs[:limit]

    def records() -> Iterator[VolumeRecord]:
        for key, image_path, label_path in pairs:
            yield synapse_record(key, image_path, label_path, size)

    params = {"window_hu": list(WINDOW), "border_crop": BORDER, "target_size": size,
              "normalization": "global z-score over the training fold (default: all volumes)"}
    return write_store(out, records(), StoreHeader("synapse-ct", "CT", CLASSES, params, normalization="global"),
                       total=len(pairs), quiet=quiet, overwrite=overwrite)
