"""Which format a path names: by its suffix for files, a folder is a DICOM series.

========== ================= =========================================
format     read              written (a label map)
========== ================= =========================================
nifti      ``.nii .nii.gz``  ``.nii .nii.gz`` (nibabel; the query's header kept when it is NIfTI)
nrrd       ``.nrrd .nhdr``   ``.nrrd .nhdr`` (SimpleITK)
metaimage  ``.mha .mhd``     ``.mha .mhd`` (SimpleITK)
dicom      a folder          ``.dcm``: a DICOM SEG object referencing the query's series (highdicom)
========== ================= =========================================
"""

from __future__ import annotations

import os
from pathlib import Path

from fewshotkit.core.errors import FewshotkitError

NIFTI, NRRD, METAIMAGE, DICOM = "nifti", "nrrd", "metaimage", "dicom"
SUFFIXES = {".nii.gz": NIFTI, ".nii": NIFTI, ".nrrd": NRRD, ".nhdr": NRRD, ".mha": METAIMAGE, ".mhd": METAIMAGE}
#: a DICOM SEG output (the only DICOM a label map is written as)
SEG_SUFFIX = ".dcm"
#: header files whose voxels live in a second file beside them
DETACHED = (".nhdr", ".mhd")


def suffix_of(path: str | os.PathLike) -> str:
    """The format suffix of ``path`` (``.nii.gz`` counts as one), lower-cased; '' when none is known."""
    name = Path(path).name.lower()
    return next((s for s in (*SUFFIXES, SEG_SUFFIX) if name.endswith(s)), "")


def input_format(path: str | os.PathLike) -> str | None:
    """The format of a scan to read: a folder is DICOM; None for a file of no known suffix."""
    if Path(path).is_dir():
        return DICOM
    return SUFFIXES.get(suffix_of(path))


def known_outputs() -> str:
    """'.nii, .nii.gz, ... or .dcm': the suffixes a label map can be written with."""
    return ", ".join(sorted(SUFFIXES, key=lambda s: (SUFFIXES[s] != NIFTI, s))) + " or " + SEG_SUFFIX


def output_suffix(path: str | os.PathLike, option: str = "-o") -> str:
    """The suffix a label map is written by, or a one-line error listing those a writer knows."""
    suffix = suffix_of(path)
    if not suffix:
        raise FewshotkitError(f"{option} '{path}': no writer knows this file type; the output must be a "
                              f"{known_outputs()} file")
    return suffix


def default_output(query: str | os.PathLike, query_format: str) -> Path:
    """Where a label map of ``query`` goes by default: beside it, ``<name>_seg`` in the query's format
    (a DICOM series' map as ``<folder>_seg.nii.gz``; ``-o NAME.dcm`` writes a DICOM SEG instead)."""
    path = Path(query)
    if query_format == DICOM:  # beside the series' folder, also when it is given as "." or ".."
        folder = path.resolve() if path.name in ("", "..") else path
        return folder.parent / f"{folder.name}_seg.nii.gz"
    suffix = suffix_of(path)
    return path.with_name(path.name[: len(path.name) - len(suffix)] + "_seg" + path.name[len(path.name) - len(suffix):])
