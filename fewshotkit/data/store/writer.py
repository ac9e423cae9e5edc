"""Writing a slice store atomically: everything goes to a temporary file that is renamed at the end."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

from fewshotkit.core.version import __version__

from fewshotkit.core import stop
from fewshotkit.core.atomic import disk_full_error, is_disk_full, temporary_path
from fewshotkit.core.errors import DataError
from fewshotkit.core.outputs import real_path
from fewshotkit.data.store import format as fmt
from fewshotkit.data.store.axes import mixed_orientations, placed_codes
from fewshotkit.data.store.lock import store_lock


@dataclass
class VolumeRecord:
    """One preprocessed volume ready to store.

    ``image``: float32 (Z, H, W), the pseudolabel input (clipped raw MR or CT in 0..255);
    ``label``: uint8 (Z, H, W) with values among the store's classes (and 0). ``real_affine``: the
    affine is the source file's own geometry (any scan format), not one the preset made up; a scan
    with a NIfTI header counts as real either way.
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
    real_affine: bool = False


def discard_h5(handle: h5py.File, tmp: Path) -> None:
    """Close ``handle`` (an HDF5 file being written to ``tmp``) without keeping anything.

    The file is emptied first: after a write failed for lack of space, HDF5's closing flush
    then has room, instead of failing again and crashing the interpreter at exit.
    """
    if tmp.exists():
        os.truncate(tmp, 0)
    try:
        handle.close()
    except (OSError, RuntimeError):
        pass  # nothing of this file is kept
    tmp.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def pixel_checksums(image: np.ndarray, label: np.ndarray) -> dict[str, str]:
    """``{"image_sha256": ..., "label_sha256": ...}`` of an image (Z, H, W) and its label (Z, H, W):
    sha256 of their bytes as stored (float32 little-endian and uint8, C order)."""
    return {"image_sha256": hashlib.sha256(np.ascontiguousarray(image, dtype="<f4").data).hexdigest(),
            "label_sha256": hashlib.sha256(np.ascontiguousarray(label, dtype=np.uint8).data).hexdigest()}


def class_pixel_table(label: np.ndarray, class_values: list[int]) -> np.ndarray:
    """int64 (Z, C): pixels of each class value per slice of ``label`` (Z, H, W)."""
    z = label.shape[0]
    flat = label.reshape(z, -1)
    counts = np.zeros((z, len(class_values)), dtype=np.int64)
    for i, value in enumerate(class_values):
        counts[:, i] = np.count_nonzero(flat == value, axis=1)
    return counts


@dataclass(frozen=True)
class StoreHeader:
    """What a store records about all its volumes: the ingest ``preset`` that wrote it, the
    ``modality``, ``classes`` (class value -> name), the ``preprocessing`` parameters, the
    ``normalization`` of the network input ("volume" or "global") and ``label_codes`` (class value
    -> the code of the user's label files; classes it leaves out are their own code)."""

    preset: str
    modality: str
    classes: dict[int, str]
    preprocessing: dict[str, Any] = field(default_factory=dict)
    normalization: str = "volume"
    label_codes: dict[int, int] | None = None


class StoreWriter:
    """Writes a new store to ``path``; nothing appears at ``path`` until :meth:`commit`.

    Use as a context manager: leaving the block normally commits (rename into place), an
    exception removes the temporary file and leaves any previous store untouched. The store's
    write lock (:mod:`fewshotkit.data.store.lock`) is held from construction to commit or abort; an
    existing ``path`` is replaced only with ``overwrite=True``. A full disk raises a one-line
    :class:`DataError` and leaves no temporary file. ``label_codes`` (class value -> the code of the
    user's label files) is recorded; classes it leaves out are their own code.
    """

    def __init__(self, path: str | os.PathLike, header: StoreHeader, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise DataError(f"output folder '{self.path.parent}' does not exist; create it first")
        if self.path.is_dir():
            raise DataError(f"'{self.path}' is a folder; give a store file name such as '{self.path / 'store.h5'}'")
        if header.normalization not in ("volume", "global"):
            raise ValueError(f"normalization must be 'volume' or 'global', not {header.normalization!r}")
        # keys to int before sorting: text keys would put "10" before "9", and the class index's
        # columns would not be in the order the reader takes them (ascending values)
        self.classes = dict(sorted((int(k), str(v)) for k, v in header.classes.items()))
        self.class_values = list(self.classes)
        self.label_codes = {v: int((header.label_codes or {}).get(v, v)) for v in self.class_values}
        self.normalization = header.normalization
        self._target = real_path(self.path)  # through a symbolic link: the real store is replaced
        self._lock = ExitStack()
        self._lock.enter_context(store_lock(self.path))
        try:
            if self.path.exists() and not overwrite:
                raise DataError(f"'{self.path}' already exists; pass --force to replace it (its volumes and "
                                "pseudolabel sets are lost) or choose another -o")
            self._tmp = temporary_path(self._target)
            self._file = h5py.File(self._tmp, "w")
        except BaseException as exc:
            self._lock.close()
            if is_disk_full(exc):
                raise disk_full_error(self.path) from exc
            raise
        self._guarded(self._start, header)
        self._order: list[str] = []
        self._stats: dict[str, tuple[float, float, int]] = {}
        self._codes: dict[str, str] = {}  # volume id -> axis codes it is stored in, where known

    def _start(self, header: StoreHeader) -> None:
        self._file.attrs[fmt.ATTR_SCHEMA] = fmt.SCHEMA_VERSION
        self._file.attrs[fmt.ATTR_FORMAT] = fmt.FORMAT_NAME
        self._file.attrs[fmt.ATTR_PRESET] = header.preset
        self._file.attrs[fmt.ATTR_MODALITY] = header.modality
        self._file.attrs[fmt.ATTR_CLASSES] = json.dumps({str(k): v for k, v in self.classes.items()})
        self._file.attrs[fmt.ATTR_LABEL_CODES] = json.dumps({str(k): v for k, v in self.label_codes.items()})
        self._file.attrs[fmt.ATTR_PREPROCESSING] = json.dumps(header.preprocessing)
        self._file.attrs[fmt.ATTR_NORMALIZATION] = self.normalization
        self._file.attrs[fmt.ATTR_CREATED] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._file.attrs[fmt.ATTR_VERSION] = __version__
        self._volumes = self._file.create_group(fmt.VOLUMES)
        self._file.create_group(fmt.PSEUDOLABELS)

    def _guarded(self, step: Callable[..., Any], *args: Any) -> Any:
        """Run a write step (unless a stop was requested, :mod:`fewshotkit.core.stop`); any failure aborts
        (temporary file removed), a full disk becomes one line."""
        try:
            stop.check()
            return step(*args)
        except BaseException as exc:
            self.abort()
            if is_disk_full(exc):
                raise disk_full_error(self.path) from exc
            raise

    def add(self, rec: VolumeRecord) -> None:
        """Store one volume (shapes and dtypes must already be checked by the preset)."""
        if rec.vid in self._order:
            raise DataError(f"volume id '{rec.vid}' appears twice (source {rec.source_image})")
        self._guarded(self._add, rec)

    def _add(self, rec: VolumeRecord) -> None:
        image = np.ascontiguousarray(rec.image, dtype=np.float32)
        label = np.ascontiguousarray(rec.label, dtype=np.uint8)
        z, h, w = image.shape
        group = self._volumes.create_group(rec.vid)
        # keep the datasets open until the flush below: HDF5 writes a dataset's chunks when it is
        # closed, and h5py only prints (does not raise) a write error at that point
        datasets = [group.create_dataset(fmt.IMAGE, data=image, chunks=(1, h, w)),
                    group.create_dataset(fmt.LABEL, data=label, chunks=(1, h, w)),
                    group.create_dataset(fmt.CLASS_PIXELS, data=class_pixel_table(label, self.class_values))]
        checksums = pixel_checksums(image, label)
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
        attrs.update(checksums)
        if rec.nifti_header is not None:
            attrs["nifti_header"] = np.void(rec.nifti_header)
        codes = placed_codes(affine, rec.inplane) if rec.real_affine or rec.nifti_header is not None else None
        if codes is not None:  # None: the preset made the affine up
            attrs["axis_codes"] = codes
        self._file.flush()  # a full disk raises here, with every dataset still open
        del datasets
        self._order.append(rec.vid)
        self._stats[rec.vid] = (total, total_sq, count)
        if codes is not None:
            self._codes[rec.vid] = codes

    def commit(self) -> Path:
        """Finish the file, rename it onto ``path`` and release the lock."""
        if not self._order:
            self.abort()
            raise DataError(f"no volumes to write to '{self.path}'")
        self._guarded(self._finish)
        self._lock.close()
        mixed = mixed_orientations(self._codes)
        if mixed:
            warnings.warn(f"store '{self.path}': {mixed}", stacklevel=2)
        return self.path

    def _finish(self) -> None:
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
        os.replace(self._tmp, self._target)

    def abort(self) -> None:
        """Drop the temporary file and release the lock (idempotent)."""
        try:
            discard_h5(self._file, self._tmp)
        finally:
            self._lock.close()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
