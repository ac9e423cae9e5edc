"""Reading a scan of any supported format as a (Z, H, W) array with its grid.

NIfTI files are read with nibabel (their affine and header as today: predictions go back with the
query's own header); NRRD, MetaImage and DICOM series with SimpleITK, whose LPS geometry becomes a
NIfTI-style RAS affine (:mod:`fewshotkit.data.io.itk`), so the orientation code works on every format
alike. A 4D scan (a cine series: frames along the fourth axis) needs ``frame``.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fewshotkit.core.errors import DataError
from fewshotkit.data.io import formats
from fewshotkit.data.io.dicom import DicomSeries
from fewshotkit.data.io.itk import Geometry


@dataclass
class Scan:
    """One scan: ``array`` (Z, H, W) of voxel axes (z, y, x), float64 for NIfTI (its scaling applied),
    else SimpleITK's pixel type (DICOM's rescale applied); ``affine`` (4, 4) RAS of voxel
    axes (x, y, z); ``geometry`` the grid as SimpleITK holds it (exact for SimpleITK-read formats);
    ``header`` the NIfTI header bytes of a NIfTI file; ``series`` the DICOM series of a folder."""

    path: Path
    format: str
    array: np.ndarray
    affine: np.ndarray
    geometry: Geometry
    spacing: tuple[float, float, float]  # (z, y, x) mm: a NIfTI header's pixel sizes, else SimpleITK's
    header: bytes | None = None
    series: DicomSeries | None = None


def _given(option: str, value: object) -> str:
    """``--frame 3`` for a command-line option, ``frame=3`` for a keyword argument."""
    return f"{option} {value}" if option.startswith("-") else f"{option}={value}"


def _pick_frame(shape: Sequence[int], frame: int | None, path: Path, option: str) -> int | None:
    """The frame index to keep of a scan of voxel ``shape`` (x, y, z[, t]); None for a 3D scan."""
    if len(shape) == 4 and shape[3] == 1:
        if frame not in (None, 0):
            raise DataError(f"{_given(option, frame)}: '{path}' has one frame (0)")
        return 0
    if len(shape) == 3:
        return None
    if len(shape) == 2:
        raise DataError(f"'{path}' is a 2D image of shape {tuple(shape)}; save it as a 3D volume of one slice")
    if len(shape) != 4:
        raise DataError(f"'{path}' has shape {tuple(shape)}; a 3D volume is expected (or a 4D scan "
                        f"with {_given(option, 'N')})")
    frames = int(shape[3])
    if frame is None:
        raise DataError(f"'{path}' is a 4D scan of {frames} frames; choose one with {_given(option, 'N')} (0..{frames - 1})")
    if not 0 <= frame < frames:
        raise DataError(f"{_given(option, frame)}: '{path}' has frames 0..{frames - 1}")
    return frame


def _check_voxels(shape: Sequence[int], stored: Sequence[int], path: Path) -> None:
    """A 3D scan (voxel ``shape`` (x, y, z)) with at least one voxel along every axis, or a one-line DataError
    naming the ``stored`` shape."""
    if len(shape) != 3 or 0 in shape:
        raise DataError(f"'{path}' has voxel shape {tuple(int(s) for s in stored)} (x, y, z), with no voxel along "
                        "an axis; a scan needs at least one slice of at least one pixel")


def _warn_unknown_geometry(img: Any, path: Path, affine: np.ndarray) -> None:
    """Warn when a NIfTI header records no orientation (qform and sform codes 0) and say what was
    assumed: nibabel's default axes and the voxel size, 1 mm where the header's is 0."""
    import warnings

    import nibabel as nib

    header = img.header
    if "qform_code" not in header or int(header["qform_code"]) or int(header["sform_code"]):
        return
    with nib.openers.ImageOpener(str(path)) as handle:  # the pixel sizes as stored, before nibabel's fix
        stored = type(header).from_fileobj(handle, check=False)["pixdim"][1:4]
    size = "voxel size unknown (pixdim 0), taken as 1 mm" if not np.all(stored) else "voxel size from pixdim"
    warnings.warn(f"'{path}' records no orientation (qform and sform codes 0): its orientation and spacing are "
                  f"unknown; taken as {''.join(nib.aff2axcodes(affine))} (nibabel's default), {size}; the result may be flipped "
                  "or scaled: give the scan with its orientation (a qform or sform)", RuntimeWarning, stacklevel=3)


def _voxel_size(img: Any, affine: np.ndarray) -> tuple[float, float, float]:
    """(x, y, z) voxel size in mm of the grid ``affine`` places: the header's pixdim, unless the
    affine (an sform that disagrees with the qform) says otherwise by more than 0.1 %."""
    import nibabel as nib

    zooms = np.asarray(img.header.get_zooms()[:3], dtype=np.float64)
    placed = nib.affines.voxel_sizes(affine)[:3]
    x, y, z = placed if not np.allclose(placed, zooms, rtol=1e-3) else zooms
    return float(x), float(y), float(z)


def _read_nifti(path: Path, frame: int | None, option: str) -> Scan:
    import nibabel as nib

    try:
        img: Any = nib.load(str(path))
        shape = img.shape
        index = _pick_frame(shape, frame, path, option)
        proxy = img.dataobj if index is None else img.dataobj[..., index]
        data = np.asarray(proxy, dtype=np.float64)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise DataError(f"'{path}' cannot be read as NIfTI ({type(exc).__name__}: {exc}); "
                        "is the file corrupt or truncated?") from None
    _check_voxels(data.shape, shape, path)
    affine = np.asarray(img.affine, dtype=np.float64)
    zooms = _voxel_size(img, affine)
    _warn_unknown_geometry(img, path, affine)
    return Scan(path, formats.NIFTI, np.ascontiguousarray(data.transpose(2, 1, 0)), affine,
                Geometry.from_affine(affine), (float(zooms[2]), float(zooms[1]), float(zooms[0])),
                img.header.binaryblock)


def _itk_frame(image: Any, path: Path, frame: int | None, option: str) -> Any:
    """A 3D SimpleITK image of ``image`` (its frame ``frame`` if 4D)."""
    import SimpleITK as sitk

    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(f"'{path}' holds {image.GetNumberOfComponentsPerPixel()} values per voxel; "
                        "a scan of one intensity per voxel is expected")
    index = _pick_frame(image.GetSize(), frame, path, option)
    if index is None:
        return image
    size = list(image.GetSize())
    return sitk.Extract(image, [*size[:3], 0], [0, 0, 0, index],
                        sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX)


def _from_itk(image: Any, path: Path, fmt: str, series: DicomSeries | None = None) -> Scan:
    import SimpleITK as sitk

    geometry = Geometry.of(image)
    array = sitk.GetArrayFromImage(image)  # (z, y, x), a copy the image does not share
    _check_voxels(array.shape[::-1], image.GetSize(), path)
    return Scan(path, fmt, array, geometry.affine, geometry, geometry.spacing_zyx, series=series)


def read_scan(path: str | os.PathLike, *, frame: int | None = None, series: Sequence[str] = (),
              option: str = "--frame") -> Scan:
    """Read ``path`` (a NIfTI, NRRD or MetaImage file, or a folder of one DICOM series) as a 3D scan.

    ``frame``: the frame of a 4D scan (``option`` names it in errors: ``--frame``, or ``frame`` for a
    keyword argument); ``series``: UIDs of which a
    folder holding several DICOM series takes the one it holds.
    """
    from fewshotkit.data.io.dicom import find_series, read_series

    path = Path(path)
    if not path.exists():
        raise DataError(f"'{path}' does not exist")
    fmt = formats.input_format(path)
    if fmt is None:
        raise DataError(f"'{path}': not a scan this reader knows; give a file ending in "
                        f"{', '.join(formats.SUFFIXES)} or a folder of one DICOM series")
    if fmt == formats.NIFTI:
        return _read_nifti(path, frame, option)
    if fmt == formats.DICOM:
        found = find_series(path, series)
        return _from_itk(_itk_frame(read_series(found), path, frame, option), path, fmt, found)
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DataError(f"'{path}' cannot be read as {fmt} ({detail}); is the file corrupt or truncated?") from None
    return _from_itk(_itk_frame(image, path, frame, option), path, fmt)


def same_grid(image: Scan, label: Scan) -> None:
    """A label on its image's grid (shape, voxel-to-world affine within 1% of a voxel), or a one-line DataError."""
    if image.array.shape != label.array.shape:
        raise DataError(f"'{label.path}' has shape {label.array.shape} (Z, H, W) but its image '{image.path}' "
                        f"has {image.array.shape}; image and label must be on one grid")
    tolerance = 0.01 * min(image.geometry.spacing)
    if not np.allclose(image.affine, label.affine, rtol=0, atol=tolerance):
        origin = ", ".join(f"{v:.4g}" for v in label.affine[:3, 3])
        raise DataError(f"'{label.path}' lies on another grid than its image '{image.path}' (voxel-to-world "
                        f"affines differ; label origin {origin} mm vs {', '.join(f'{v:.4g}' for v in image.affine[:3, 3])}"
                        " mm); resample the label onto its image's grid")
