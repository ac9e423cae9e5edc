"""Scans in and out: NIfTI, NRRD, MetaImage and DICOM series read as (Z, H, W) arrays with a
NIfTI-style affine; label maps written back on a scan's own grid in the format asked for.

- :mod:`~fewshotkit.data.io.formats`: which format a path names, and the writers' suffixes;
- :mod:`~fewshotkit.data.io.itk`: SimpleITK geometry (origin, spacing, direction; LPS) and the
  NIfTI affine (RAS), exactly in both directions;
- :mod:`~fewshotkit.data.io.dicom`: a folder of DICOM files as one series;
- :mod:`~fewshotkit.data.io.codes`: label codes (integers 0..65535) and their compact indices;
- :mod:`~fewshotkit.data.io.reader` and :mod:`~fewshotkit.data.io.writer`: one entry point each;
- :mod:`~fewshotkit.data.io.dicom_seg`: a DICOM SEG object referencing the source series.
"""
