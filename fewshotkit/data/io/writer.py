"""Writing a label map on a scan's own grid, in the format its name asks for, atomically.

The label map carries the user's codes in the smallest unsigned type that holds them (uint8 up
to 255, else uint16). NIfTI written for a NIfTI scan keeps that scan's header (as ``segment``
always did); every other output takes the scan's origin, spacing and direction as read, so a
SimpleITK-read scan's grid is carried without a round trip through the affine. Nothing appears
at the target unless the whole file (both files, for a detached header) was written.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fewshotkit.core.atomic import atomic_path, disk_full_error, is_disk_full
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.data.io import formats
from fewshotkit.data.io.codes import smallest_unsigned

if TYPE_CHECKING:
    from fewshotkit.data.io.reader import Scan


def as_labels(array: np.ndarray) -> np.ndarray:
    """``array`` (integer codes >= 0) in the smallest unsigned type that holds its largest value."""
    array = np.asarray(array)
    return array.astype(smallest_unsigned(int(array.max()) if array.size else 0), copy=False)


def nifti_labels(data_xyz: np.ndarray, affine: np.ndarray, header: bytes | None) -> Any:
    """A nibabel label image of voxel axes (x, y, z), with the source ``header`` (bytes of a NIfTI-1
    or NIfTI-2 header) when given: its geometry and fields kept, its data type, scaling, display
    window and intent made those of a label map (codes 0..max, shown as such in a viewer)."""
    import nibabel as nib

    data = as_labels(data_xyz)
    kind = (nib.Nifti2Header, nib.Nifti2Image) if header is not None and len(header) >= 540 else \
        (nib.Nifti1Header, nib.Nifti1Image)
    hdr = kind[0].from_fileobj(io.BytesIO(header)) if header is not None and len(header) >= 348 else None
    img = kind[1](data, affine, header=hdr)
    img.set_data_dtype(data.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = 0, int(data.max()) if data.size else 0
    img.header.set_intent("none")
    return img


def _itk_labels(labels_zhw: np.ndarray, like: "Scan") -> Any:
    import SimpleITK as sitk

    return like.geometry.apply(sitk.GetImageFromArray(as_labels(labels_zhw)))


def _write_file(target: Path, suffix: str, labels_zhw: np.ndarray, like: "Scan") -> None:
    """One file (NIfTI, .nrrd, .mha) through a temporary name with the same suffix."""
    import SimpleITK as sitk

    with atomic_path(target, suffix=suffix) as tmp:
        if formats.SUFFIXES[suffix] == formats.NIFTI and like.header is not None:
            import nibabel as nib

            nib.save(nifti_labels(np.ascontiguousarray(labels_zhw.transpose(2, 1, 0)), like.affine, like.header), tmp)
        else:
            sitk.WriteImage(_itk_labels(labels_zhw, like), str(tmp), useCompression=True)


def _write_detached(target: Path, labels_zhw: np.ndarray, like: "Scan") -> None:
    """A header and its voxel file (.nhdr, .mhd): both written in a hidden folder beside ``target``,
    then moved, the voxel file first, so the header never names a file that is not there. A header
    being replaced is moved aside first (never the new voxels under the old header); a voxel file
    beside ``target`` that no header of that name owns is not overwritten."""
    import SimpleITK as sitk

    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        sitk.WriteImage(_itk_labels(labels_zhw, like), str(folder / target.name), useCompression=True)
        written = sorted(folder.iterdir(), key=lambda p: p.name == target.name)
        for path in written[:-1]:
            if (target.parent / path.name).exists() and not target.exists():
                raise FewshotkitError(f"'{target}': its voxel file '{target.parent / path.name}' would replace a "
                                      "file of that name; move it, or give another output name")
        if target.exists():
            os.replace(target, folder / ".replaced-header")
        for path in written:
            os.replace(path, target.parent / path.name)
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(target) from exc
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_output(path: str | os.PathLike, like: "Scan | None" = None, option: str = "-o") -> str:
    """The writer suffix of ``path``, checked before any work: a suffix a writer knows; with ``like``
    (the scan it will lie on), a DICOM SEG only for a DICOM series, and highdicom installed for it."""
    suffix = formats.output_suffix(path, option)
    if suffix == formats.SEG_SUFFIX and like is not None:
        from fewshotkit.data.io.dicom_seg import check_seg

        check_seg(Path(path), like, option)
    return suffix


def write_labels(path: str | os.PathLike, labels_zhw: np.ndarray, like: "Scan",
                 names: dict[int, str] | None = None, option: str = "-o") -> Path:
    """Write ``labels_zhw`` (Z, H, W) integer codes on the grid of ``like`` to ``path``.

    The format follows ``path``'s suffix (:func:`fewshotkit.data.io.formats.output_suffix`); ``.dcm``
    writes a DICOM SEG object of ``like``'s series, its segments named by ``names`` (code -> name).
    """
    target = Path(path)
    suffix = formats.output_suffix(target, option)
    if tuple(labels_zhw.shape) != tuple(like.array.shape):
        raise FewshotkitError(f"a label map of shape {labels_zhw.shape} does not fit the scan '{like.path}' "
                              f"{like.array.shape}")
    if suffix == formats.SEG_SUFFIX:
        from fewshotkit.data.io.dicom_seg import write_seg

        write_seg(target, labels_zhw, like, names or {}, option)
    elif suffix in formats.DETACHED:
        _write_detached(target, labels_zhw, like)
    else:
        _write_file(target, suffix, labels_zhw, like)
    return target
