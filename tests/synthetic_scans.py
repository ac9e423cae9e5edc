"""Synthetic scans written in every format by SimpleITK (and nibabel for 4D NIfTI): nothing downloaded.

``write_scan`` writes a (Z, H, W) array on a given grid as NIfTI, NRRD or MetaImage; ``write_series``
writes it as a DICOM series, one file per slice, with the tags a reader and a DICOM SEG need.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from fewshotkit.data.io.dicom import kept_locale

STUDY_UID = "1.2.826.0.1.3680043.8.498.10"
FRAME_OF_REFERENCE_UID = "1.2.826.0.1.3680043.8.498.11"


def rotation(degrees: float) -> tuple[float, ...]:
    """A proper rotation about the z axis, tilted 5 degrees about x: an oblique direction matrix (9,)."""
    a, b = math.radians(degrees), math.radians(5.0)
    about_z = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    about_x = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return tuple(float(v) for v in (about_z @ about_x).reshape(-1))


def image_on_grid(array_zhw: np.ndarray, origin, spacing, direction) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_zhw))
    image.SetOrigin(tuple(float(v) for v in origin))
    image.SetSpacing(tuple(float(v) for v in spacing))
    image.SetDirection(tuple(float(v) for v in direction))
    return image


def write_scan(path: Path, array_zhw: np.ndarray, origin=(12.5, -40.25, 7.0), spacing=(1.4, 1.4, 5.0),
               direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> Path:
    """``array_zhw`` on the grid (origin, spacing, direction: SimpleITK's, voxel axes x, y, z) at ``path``."""
    sitk.WriteImage(image_on_grid(array_zhw, origin, spacing, direction), str(path))
    return path


@kept_locale()
def write_series(folder: Path, array_zhw: np.ndarray, origin=(12.5, -40.25, 7.0), spacing=(1.4, 1.4, 5.0),
                 direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), uid: str = "1.2.826.0.1.3680043.8.498.1",
                 description: str = "T2 axial", modality: str = "MR", prefix: str = "slice_") -> Path:
    """``array_zhw`` (int16) as a DICOM series in ``folder``, one file per slice (in reversed file
    name order, so the reader must sort the slices by position)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = image_on_grid(array_zhw.astype(np.int16), origin, spacing, direction)
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    orientation = "\\".join(f"{v:.10g}" for v in (*d[:, 0], *d[:, 1]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    depth = image.GetDepth()
    for z in range(depth):
        item = image[:, :, z]
        position = "\\".join(f"{v:.10g}" for v in image.TransformIndexToPhysicalPoint((0, 0, z)))
        for tag, value in (("0008|0060", modality), ("0020|000d", STUDY_UID), ("0020|000e", uid),
                           ("0008|103e", description), ("0020|0052", FRAME_OF_REFERENCE_UID),
                           ("0010|0010", "Phantom^One"), ("0010|0020", "P1"), ("0008|0020", "20240101"),
                           ("0008|0016", "1.2.840.10008.5.1.4.1.1.4"), ("0008|0018", f"{uid}.{z + 1}"),
                           ("0020|0032", position), ("0020|0037", orientation), ("0020|0013", str(z + 1)),
                           ("0020|0011", "3"), ("0018|0050", f"{spacing[2]:g}"),
                           ("0028|0030", f"{spacing[1]:g}\\{spacing[0]:g}")):
            item.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{prefix}{depth - z:03d}.dcm"))
        writer.Execute(item)
    return folder


def read_back(path: Path) -> sitk.Image:
    """A scan as SimpleITK reads it (a folder: its one DICOM series), independently of fewshotkit."""
    if path.is_dir():
        return sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path)))
    return sitk.ReadImage(str(path))
