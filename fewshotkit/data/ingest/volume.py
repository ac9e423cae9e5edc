"""One scan the user brings (``fewshotkit segment``, the Python API): read, preprocess like the presets, map back.

Any format of :mod:`fewshotkit.data.io` (NIfTI, NRRD, MetaImage, a DICOM series folder); a label map
holds the user's codes (integers 0..65535) and must lie on its image's grid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fewshotkit.data.ingest.common import check_pair, clip_top
from fewshotkit.data.io.codes import as_codes
from fewshotkit.data.io.reader import Scan, read_scan, same_grid


@dataclass
class PreparedVolume:
    """``image`` float32 (Z, H, W) per-volume z-scored; ``label`` (Z, H, W) codes (uint8 or uint16) or None;
    ``scan`` the image as read (raw intensities, its grid and format); ``series_uids`` the DICOM series
    read for the image and the label (none for files)."""

    image: np.ndarray
    label: np.ndarray | None
    scan: Scan
    series_uids: tuple[str, ...] = ()

    @property
    def affine(self) -> np.ndarray:
        return self.scan.affine

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.scan.spacing

    def write_labels(self, path: str | os.PathLike, labels_zhw: np.ndarray, names: dict[int, str] | None = None,
                     option: str = "-o") -> Path:
        """A (Z, H, W) label map of codes on the source grid, written in the format ``path`` names."""
        from fewshotkit.data.io.writer import write_labels

        return write_labels(path, labels_zhw, self.scan, names, option)


def z_score(image: np.ndarray) -> np.ndarray:
    """``image`` (float32) z-scored over the whole volume. The statistics are summed in float64:
    float32 sums depend on the voxel order, and a scan stored in another orientation must give the
    same model input."""
    mean, std = np.float32(image.mean(dtype=np.float64)), np.float32(image.std(dtype=np.float64) or 1.0)
    return ((image - mean) / std).astype(np.float32)


def load_volume(
    image_path: str | os.PathLike,
    label_path: str | os.PathLike | None = None,
    *,
    clip_percentile: float | None = 99.5,
    frame: int | None = None,
    series: Sequence[str] = (),
    frame_option: str = "--frame",
) -> PreparedVolume:
    """Read a scan (and its label map) as (Z, H, W) on its own grid: clip the top intensities unless
    the scan already looks clipped, per-volume z-score (the model's frame is
    :mod:`fewshotkit.evaluation.frame`'s). ``frame`` picks the frame of
    a 4D scan (``frame_option`` names it in errors), ``series`` the series of a DICOM folder holding several
    (:func:`~fewshotkit.data.io.reader.read_scan`)."""
    scan = read_scan(image_path, frame=frame, series=series, option=frame_option)
    label, read = None, [scan]
    if label_path is not None:
        label_scan = read_scan(label_path, frame=frame, series=series, option=frame_option)
        read.append(label_scan)
        check_pair(scan.array, label_scan.array, Path(image_path), Path(label_path))
        same_grid(scan, label_scan)
        label = as_codes(label_scan.array, label_path)
    else:
        check_pair(scan.array, None, Path(image_path), None)
    image, _ = clip_top(scan.array, clip_percentile, "auto")
    uids = tuple(s.series.uid for s in read if s.series is not None)
    return PreparedVolume(image=z_score(image.astype(np.float32)), label=label, scan=scan, series_uids=uids)
