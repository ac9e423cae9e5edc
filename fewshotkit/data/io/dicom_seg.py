"""A label map as a DICOM SEG object (a labelmap-free BINARY segmentation) that references the
DICOM series it was segmented in, for viewers that load segmentations as DICOM (OHIF, 3D Slicer).

One segment per label code, numbered 1..N in code order and labelled with the class name and code
(``LV-BP (500)``); frame i of the SEG lies on slice i of the source series as SimpleITK ordered it.
Needs highdicom, the optional extra ``fewshotkit[dicom]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fewshotkit.core.atomic import atomic_path
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.core.version import __version__

if TYPE_CHECKING:
    from fewshotkit.data.io.reader import Scan

EXTRA_HINT = "pip install 'fewshotkit[dicom]'"


def check_seg(target: Path, like: "Scan", option: str = "-o") -> None:
    """A one-line error unless a SEG of ``like`` can be written: ``like`` is a DICOM series and highdicom is installed."""
    if like.series is None:
        raise FewshotkitError(f"{option} '{target}': a DICOM SEG output references a DICOM series, but the "
                              f"query '{like.path}' is {like.format}; give {option} a .nii.gz, .nrrd or .mha name")
    try:
        import highdicom  # noqa: F401
    except ImportError:
        raise FewshotkitError(f"{option} '{target}': writing DICOM SEG needs highdicom; {EXTRA_HINT}") from None


def write_seg(target: Path, labels_zhw: np.ndarray, like: "Scan", names: dict[int, str], option: str = "-o") -> None:
    """Write ``labels_zhw`` (Z, H, W) codes on ``like``'s DICOM series as a SEG object at ``target``."""
    check_seg(target, like, option)
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    assert like.series is not None  # checked above

    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in like.series.files]
    present = [int(v) for v in np.unique(labels_zhw) if v != 0]
    if not present:
        raise FewshotkitError(f"{option} '{target}': the prediction is empty; a DICOM SEG needs at least one "
                              "segment (write a .nii.gz instead)")
    algorithm = hd.AlgorithmIdentificationSequence(name="fewshotkit", family=codes.DCM.ArtificialIntelligence,
                                                   version=__version__)
    segments = [hd.seg.SegmentDescription(
        segment_number=number, segment_label=f"{names.get(code, 'class')} ({code})",
        segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)
        for number, code in enumerate(present, start=1)]
    numbered = np.zeros(labels_zhw.shape, dtype=np.uint16 if len(present) > 255 else np.uint8)
    for number, code in enumerate(present, start=1):
        numbered[labels_zhw == code] = number
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=numbered, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments, series_instance_uid=hd.UID(), series_number=int(getattr(
            sources[0], "SeriesNumber", 0) or 0) + 1000, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="fewshotkit", manufacturer_model_name="fewshotkit segment", software_versions=__version__,
        device_serial_number="0", omit_empty_frames=False)
    with atomic_path(target, suffix=".dcm") as tmp:
        seg.save_as(tmp)
