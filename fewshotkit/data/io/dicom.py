"""A folder of DICOM files as one scan: its series found, one chosen, its slices in order.

A folder must hold one series, or ``--series UID`` picks one of several (a repeatable option: each
folder takes the UID it holds). GDCM (through SimpleITK) finds the series and sorts their slices
along the slice normal; the slices must then form one grid (one orientation, one position each,
evenly spaced), or the scan would be read on a grid it does not lie on.
"""

from __future__ import annotations

import locale
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from fewshotkit.core.errors import DataError

DESCRIPTION_TAG = "0008|103e"
POSITION_TAG, ORIENTATION_TAG = "0020|0032", "0020|0037"
#: how far (relative) a gap between slices may differ from the typical one
SPACING_TOLERANCE = 0.01


@contextmanager
def kept_locale() -> Iterator[None]:
    """Restore the process's C locale after GDCM, which sets it to "C" and leaves it there: Python
    would then take ASCII as the preferred encoding, and text read from subprocesses would fail."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


@dataclass(frozen=True)
class DicomSeries:
    """One series of a folder: its ``uid`` and slice ``files`` in slice order."""

    folder: Path
    uid: str
    files: tuple[str, ...] = field(repr=False)


def _description(first_file: str) -> str:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(first_file)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return ""
    return reader.GetMetaData(DESCRIPTION_TAG).strip() if reader.HasMetaDataKey(DESCRIPTION_TAG) else ""


def _listing(folder: Path, uids: Sequence[str]) -> str:
    import SimpleITK as sitk

    parts = []
    for uid in uids:
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
        text = _description(files[0]) if files else ""
        parts.append(f"{uid} ({text or 'no description'}, {len(files)} files)")
    return "; ".join(parts)


@kept_locale()
def find_series(folder: str | Path, series: Sequence[str] = ()) -> DicomSeries:
    """The one series of ``folder``, or the one whose UID is among ``series``; a one-line
    DataError for a folder with no readable DICOM or with several series and no choice."""
    import SimpleITK as sitk

    folder = Path(folder)
    uids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    if not uids:
        count = sum(1 for p in folder.iterdir() if p.is_file())
        raise DataError(f"'{folder}' holds no readable DICOM series ({count} file{'' if count == 1 else 's'}); "
                        "give a folder of one "
                        "scan's DICOM files, or the scan as a NIfTI, NRRD or MetaImage file")
    chosen = [u for u in uids if u in series]
    if len(chosen) != 1 and len(uids) > 1:
        raise DataError(f"'{folder}' holds {len(uids)} DICOM series: {_listing(folder, uids)}; "
                        "choose one with --series UID")
    uid = chosen[0] if chosen else uids[0]
    files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
    check_slices(folder, uid, files)
    return DicomSeries(folder, uid, files)


def _geometry_tags(file: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(image position (3,), image orientation (6,)) of one DICOM file, or None without them."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    try:
        reader.ReadImageInformation()
        values = [np.array([float(v) for v in reader.GetMetaData(tag).split("\\")]) for tag in (POSITION_TAG, ORIENTATION_TAG)]
    except (RuntimeError, ValueError):
        return None
    return (values[0], values[1]) if values[0].size == 3 and values[1].size == 6 else None


def check_slices(folder: Path, uid: str, files: Sequence[str]) -> None:
    """The slices of a series (``files`` in slice order) on one grid: one orientation, one position
    each, evenly spaced along the normal; else a one-line DataError naming what is wrong. A series
    whose files do not record their position is taken as it is."""
    tags = [_geometry_tags(f) for f in files]
    if len(files) < 2 or any(tag is None for tag in tags):
        return
    positions = np.stack([tag[0] for tag in tags if tag is not None])
    orientations = np.stack([tag[1] for tag in tags if tag is not None])
    where = f"'{folder}': DICOM series {uid}"
    if np.abs(orientations - orientations[0]).max() > 1e-4:
        raise DataError(f"{where} mixes slice orientations (a localizer among the slices?); give a folder of the "
                        "slices of one scan")
    normal = np.cross(orientations[0][:3], orientations[0][3:])
    gaps = np.diff(np.sort(positions @ normal))
    if gaps.min() < 1e-3:
        raise DataError(f"{where} has {len(files) - np.count_nonzero(gaps >= 1e-3) - 1} slice(s) at a position "
                        "another slice holds (several echoes, phases or repeats in one series?); give a folder of "
                        "one scan's slices")
    typical = float(np.median(gaps))
    odd = np.abs(gaps - typical) > SPACING_TOLERANCE * typical
    if odd.any():
        raise DataError(f"{where}: its slices are not evenly spaced (a gap of {gaps[odd].max():.3g} mm where the "
                        f"others are {typical:.3g} mm: a missing file?); give every slice of the scan")


@kept_locale()
def read_series(found: DicomSeries):
    """The series as a SimpleITK image (voxel axes x, y, z)."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(found.files))
    reader.MetaDataDictionaryArrayUpdateOff()
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DataError(f"'{found.folder}': DICOM series {found.uid} cannot be read ({detail})") from None
    return image
