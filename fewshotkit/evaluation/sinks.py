"""Prediction sinks: what receives each query scan's prediction during an evaluation (a NIfTI file per
scan and class, or one overlay figure row per class). A sink is called as ``sink(scan, class_name,
prediction)`` with the (Z, H, W) binary prediction on the scan's stored grid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fewshotkit.core.names import safe_name, unique_safe_names
from fewshotkit.evaluation.figures import OverlayRow
from fewshotkit.evaluation.protocol import PredictionSink
from fewshotkit.evaluation.results import save_nifti_atomic


class NiftiWriter:
    """Prediction sink writing every query scan's binary prediction as NIfTI on the scan's grid.

    Files are ``DIR/<scan>_<class>.nii.gz``; names that would collide get a suffix (the class
    value, the scan's position in the store, else ``-2``, ``-3``, ...), so no prediction
    overwrites another. ``written`` lists each file once.
    """

    def __init__(self, store: Any, directory: str | os.PathLike) -> None:
        self.store = store
        self.directory = Path(directory)
        self.written: list[Path] = []
        self._class_files = unique_safe_names(dict(store.classes))
        by_index = unique_safe_names(dict(enumerate(store.volumes)))
        self._scan_files = {vid: by_index[i] for i, vid in enumerate(store.volumes)}
        self._owner: dict[Path, tuple[str, str]] = {}

    def path(self, scan: str, class_name: str) -> Path:
        """The file of (``scan``, ``class_name``), reserved for that pair."""
        stem = f"{self._scan_files.get(scan, safe_name(scan))}_{self._class_files[self.store.class_value(class_name)]}"
        path, n = self.directory / f"{stem}.nii.gz", 1
        while self._owner.setdefault(path, (scan, class_name)) != (scan, class_name):
            n += 1
            path = self.directory / f"{stem}-{n}.nii.gz"
        return path

    def __call__(self, scan: str, class_name: str, prediction: np.ndarray) -> None:
        image = self.store.to_nifti(scan, prediction.astype(np.uint8))
        path = save_nifti_atomic(image, self.path(scan, class_name))
        if path not in self.written:
            self.written.append(path)


class OverlayCollector:
    """Prediction sink keeping one Fig. 4-style row per class: the first query scan's middle GT slice."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.rows: dict[str, OverlayRow] = {}

    def __call__(self, scan: str, class_name: str, prediction: np.ndarray) -> None:
        if class_name in self.rows:
            return
        value = self.store.class_value(class_name)
        label = np.asarray(self.store.label(scan))
        zs = np.flatnonzero((label == value).any(axis=(1, 2)))
        z = int(zs[len(zs) // 2]) if zs.size else prediction.shape[0] // 2
        self.rows[class_name] = OverlayRow(
            f"{class_name}: scan {scan}, z={z}", np.asarray(self.store.image(scan, z)), label[z] == value,
            prediction[z].astype(bool),
        )


def fan_out(sinks: Sequence[PredictionSink]) -> PredictionSink | None:
    """One sink that passes each prediction to every one of ``sinks`` (None: no sinks)."""
    if not sinks:
        return None

    def sink(scan: str, class_name: str, prediction: np.ndarray) -> None:
        for s in sinks:
            s(scan, class_name, prediction)

    return sink
