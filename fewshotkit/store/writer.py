"""Writing a slice store atomically: everything goes to a temporary file that is renamed at the end."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fewshotkit import __version__
from fewshotkit.atomic import temporary_path
from fewshotkit.errors import DataError
from fewshotkit.store import format as fmt


@dataclass
class VolumeRecord:
    """One preprocessed volume ready to store.

    ``image``: float32 (Z, H, W), the pseudolabel input (clipped raw MR or CT in 0..255);
    ``label``: uint8 (Z, H, W) with values among the store's classes (and 0).
    """

    vid: str
    image: np.ndarray
    label: np.ndarray
    patient: str
    source_image: str
    source_label: str
    spacing: tuple[float, float, float]  # z, y, x in mm
    original_shape: tuple[int, int, int]  # source (Z, H, W)
    affine: np.ndarray | None = None  # (4, 4); None -> a diagonal affine from the spacing
    inplane: list[dict[str, Any]] = field(default_factory=list)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    nifti_header: bytes | None = None




def fsync_path(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def class_pixel_table(label: np.ndarray, class_values: list[int]) -> np.ndarray:
    """int64 (Z, C): pixels of each class value per slice of ``label`` (Z, H, W)."""
    z = label.shape[0]
    flat = label.reshape(z, -1)
    counts = np.zeros((z, len(class_values)), dtype=np.int64)
    for i, value in enumerate(class_values):
        counts[:, i] = np.count_nonzero(flat == value, axis=1)
    return counts


class StoreWriter:
    """Writes a new store to ``path``; nothing appears at ``path`` until :meth:`commit`.

    Use as a context manager: leaving the block normally commits (rename into place), an
    exception removes the temporary file and leaves any previous store untouched.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        preset: str,
        modality: str,
        classes: dict[int, str],
        preprocessing: dict[str, Any] | None = None,
        normalization: str = "volume",
    ) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise DataError(f"output folder '{self.path.parent}' does not exist; create it first")
        if normalization not in ("volume", "global"):
            raise ValueError(f"normalization must be 'volume' or 'global', not {normalization!r}")
        self.classes = {int(k): str(v) for k, v in sorted(classes.items())}
        self.class_values = list(self.classes)
        self.normalization = normalization
        self._tmp = temporary_path(self.path)
        self._file = h5py.File(self._tmp, "w")
        self._file.attrs[fmt.ATTR_SCHEMA] = fmt.SCHEMA_VERSION
        self._file.attrs[fmt.ATTR_FORMAT] = fmt.FORMAT_NAME
        self._file.attrs[fmt.ATTR_PRESET] = preset
        self._file.attrs[fmt.ATTR_MODALITY] = modality
        self._file.attrs[fmt.ATTR_CLASSES] = json.dumps({str(k): v for k, v in self.classes.items()})
        self._file.attrs[fmt.ATTR_PREPROCESSING] = json.dumps(preprocessing or {})
        self._file.attrs[fmt.ATTR_NORMALIZATION] = normalization
        self._file.attrs[fmt.ATTR_CREATED] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._file.attrs[fmt.ATTR_VERSION] = __version__
        self._volumes = self._file.create_group(fmt.VOLUMES)
        self._file.create_group(fmt.PSEUDOLABELS)
        self._order: list[str] = []
        self._stats: dict[str, tuple[float, float, int]] = {}

    def add(self, rec: VolumeRecord) -> None:
        """Store one volume (shapes and dtypes must already be checked by the preset)."""
        if rec.vid in self._order:
            raise DataError(f"volume id '{rec.vid}' appears twice (source {rec.source_image})")
        image = np.ascontiguousarray(rec.image, dtype=np.float32)
        label = np.ascontiguousarray(rec.label, dtype=np.uint8)
        z, h, w = image.shape
        group = self._volumes.create_group(rec.vid)
        group.create_dataset(fmt.IMAGE, data=image, chunks=(1, h, w))
        group.create_dataset(fmt.LABEL, data=label, chunks=(1, h, w))
        group.create_dataset(fmt.CLASS_PIXELS, data=class_pixel_table(label, self.class_values))
        values = image.astype(np.float64)
        total, total_sq, count = float(values.sum()), float(np.square(values).sum()), int(values.size)
        mean = total / count
        std = float(values.std()) or 1.0
        spacing = np.asarray(rec.spacing, dtype=np.float64)
        affine = rec.affine if rec.affine is not None else np.diag([spacing[2], spacing[1], spacing[0], 1.0])
        attrs = group.attrs
        attrs["patient"] = rec.patient
        attrs["source_image"] = rec.source_image
        attrs["source_label"] = rec.source_label
        attrs["affine"] = np.asarray(affine, dtype=np.float64)
        attrs["spacing"] = spacing
        attrs["original_shape"] = np.asarray(rec.original_shape, dtype=np.int64)
        attrs["inplane"] = json.dumps(rec.inplane)
        attrs["preprocessing"] = json.dumps(rec.preprocessing)
        attrs["norm_mean"] = mean
        attrs["norm_std"] = std
        attrs["voxel_sum"] = total
        attrs["voxel_sumsq"] = total_sq
        attrs["voxel_count"] = count
        if rec.nifti_header is not None:
            attrs["nifti_header"] = np.void(rec.nifti_header)
        self._order.append(rec.vid)
        self._stats[rec.vid] = (total, total_sq, count)

    def commit(self) -> Path:
        """Finish the file and rename it onto ``path``."""
        if not self._order:
            raise DataError(f"no volumes to write to '{self.path}'")
        if self.normalization == "global":  # default statistics: all volumes (fold code may override)
            total = sum(s[0] for s in self._stats.values())
            total_sq = sum(s[1] for s in self._stats.values())
            count = sum(s[2] for s in self._stats.values())
            mean = total / count
            std = float(np.sqrt(max(total_sq / count - mean * mean, 0.0))) or 1.0
            for vid in self._order:
                self._volumes[vid].attrs["norm_mean"] = mean
                self._volumes[vid].attrs["norm_std"] = std
        self._file.attrs[fmt.ATTR_VOLUME_ORDER] = json.dumps(self._order)
        self._file.close()
        fsync_path(self._tmp)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._file.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()
