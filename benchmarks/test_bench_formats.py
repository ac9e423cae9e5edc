"""Reading a DICOM series: fewshotkit's reader against SimpleITK's own read of the same files.

A 200-slice series of 256 x 256 int16 slices (oblique, files in reverse slice order), written by
SimpleITK. fewshotkit's read finds the folder's series (refusing a folder of several), reads them
with SimpleITK and converts the voxels to a float64 (Z, H, W) array with its NIfTI-style affine;
SimpleITK's own read is ``sitk.ReadImage(GetGDCMSeriesFileNames(folder))``. Target: within 1.5x.

Run: ``python -m pytest -s benchmarks/test_bench_formats.py``. Reported, not judged.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

SLICES, SIZE = 200, 256


def _scans_module():
    spec = importlib.util.spec_from_file_location(
        "fewshotkit_synthetic_scans", Path(__file__).resolve().parents[1] / "tests" / "synthetic_scans.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    scans = _scans_module()
    volume = np.random.default_rng(0).integers(-1000, 2000, (SLICES, SIZE, SIZE), dtype=np.int16)
    folder = scans.write_series(tmp_path_factory.mktemp("dicom") / "ct", volume, direction=scans.rotation(10.0),
                                spacing=(0.8, 0.8, 1.5), modality="CT")
    return folder, volume


def _best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def test_reading_a_200_slice_series_against_simpleitk(benchmark, seconds, series):
    import SimpleITK as sitk

    from fewshotkit.data.io.reader import read_scan

    folder, volume = series
    scan = benchmark.pedantic(read_scan, args=(folder,), rounds=5, warmup_rounds=1)
    np.testing.assert_array_equal(scan.array, volume)
    assert scan.spacing == pytest.approx((1.5, 0.8, 0.8))
    ours = seconds("min")
    if ours is not None:
        own = _best_of(5, lambda: sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder))))
        print(f"a {SLICES}-slice DICOM series ({SIZE} x {SIZE}): fewshotkit {ours:.3f} s, SimpleITK's own read "
              f"{own:.3f} s: {ours / own:.2f}x (target <= 1.5x)")
