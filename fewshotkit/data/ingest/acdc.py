"""The ``acdc`` preset: per-volume HDF5 files (image in [0, 1], label 0-3), resized to 256 x 256."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from fewshotkit.core.errors import DataError
from fewshotkit.data.ingest.common import apply_inplane, check_pair, map_labels, require_dir, resize_op, scan_order, write_store
from fewshotkit.data.store.writer import StoreHeader, VolumeRecord

CLASSES = {1: "RV", 2: "LV-MYO", 3: "LV-BP"}
SCALE = 255.0  # stored intensities 0..255 so felzenszwalb's scale behaves as on CT


def acdc_record(path: Path, target_size: int) -> VolumeRecord:
    try:
        with h5py.File(path, "r") as f:
            if "image" not in f or "label" not in f:
                raise DataError(f"'{path}' lacks an 'image' or 'label' dataset (found: {', '.join(f.keys())})")
            image = np.asarray(f["image"][()], dtype=np.float64)
            label = np.asarray(f["label"][()])
    except OSError as exc:
        raise DataError(f"'{path}' cannot be read as HDF5 ({exc}); is the file corrupt?") from None
    if image.ndim != 3:
        raise DataError(f"'{path}': image has shape {image.shape}; (Z, H, W) is expected")
    check_pair(image, label.astype(np.float64), path, path)
    label_u8 = map_labels(label.astype(np.float64), {float(v): v for v in CLASSES}, path)
    op = resize_op(image.shape[1:], target_size)
    h0, w0 = image.shape[1:]
    m = re.match(r"(patient\d+)", path.stem)
    return VolumeRecord(
        vid=path.stem,
        image=apply_inplane((image * SCALE).astype(np.float32), [op], is_label=False),
        label=apply_inplane(label_u8, [op], is_label=True),
        patient=m.group(1) if m else path.stem,
        source_image=str(path.resolve()),
        source_label=str(path.resolve()),
        spacing=(1.0, h0 / target_size, w0 / target_size),  # source spacing unknown: 1 mm per source pixel
        original_shape=tuple(int(s) for s in image.shape),  # type: ignore[arg-type]
        affine=np.eye(4),  # the source grid: spacing unknown, one unit per source voxel
        inplane=[op],
        preprocessing={"scale": SCALE},
    )


def ingest_acdc(src: str | os.PathLike, out: str | os.PathLike, *, target_size: int = 256,
                limit: int | None = None, quiet: bool = False, overwrite: bool = False) -> Path:
    folder = require_dir(src)
    files = sorted(folder.glob("*.h5"), key=lambda p: scan_order(p.stem))
    if not files:
        raise DataError(f"'{folder}' has no *.h5 files (expected patientNNN_frameNN.h5)")
    if limit is not None:
        files = files[:limit]

    def records() -> Iterator[VolumeRecord]:
        for path in files:
            yield acdc_record(path, target_size)

    params = {"target_size": target_size, "resize": "images linear, labels nearest", "scale": SCALE,
              "normalization": "per-volume z-score"}
    return write_store(out, records(), StoreHeader("acdc", "MR", CLASSES, params), total=len(files),
                       quiet=quiet, overwrite=overwrite)
