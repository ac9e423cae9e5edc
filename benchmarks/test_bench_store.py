"""Random slice reads from an uncompressed store (target >= 5,000 slices/s on 2 cores)."""

from __future__ import annotations

import numpy as np
import pytest

from fewshotkit.data.ingest.synthetic import ingest_synthetic
from fewshotkit.data.store.reader import SliceStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "demo.h5"
    ingest_synthetic(path, volumes=10, slices=24, size=256, quiet=True)
    return SliceStore(path)


def test_random_slice_reads(benchmark, seconds, store):
    rng = np.random.default_rng(0)
    picks = [(store.volumes[int(rng.integers(10))], int(rng.integers(24))) for _ in range(1000)]

    def read_all():
        for vol, z in picks:
            store.image(vol, z)
        return store.image(*picks[0])

    out = benchmark(read_all)
    assert out.shape == (256, 256) and out.dtype == np.float32
    mean = seconds("mean")
    if mean is None:
        return  # timing is off (smoke run)
    per_second = 1000 / mean
    print(f"random 256x256 slice reads: {per_second:.0f} slices/s")
    assert per_second >= 5000


def test_scan_checks_with_pixel_checksums(benchmark, seconds, tmp_path):
    """What `eval` and `train` pay per scan they open: one read of image and label, the finite and
    label-code checks, the class index and the sha256 of both (docs/store-format.md)."""
    from fewshotkit.data.store.check import require_valid_scans

    path = tmp_path / "chaos_like.h5"
    ingest_synthetic(path, volumes=4, slices=36, size=256, quiet=True)  # CHAOS T2 volumes: ~36 x 256 x 256
    store = SliceStore(path)

    def check_all():
        store.checked_scans.clear()
        require_valid_scans(store, store.volumes)

    benchmark(check_all)
    mean = seconds("mean")
    if mean is None:
        return
    megabytes = 4 * 36 * 256 * 256 * 5 / 1e6  # float32 image + uint8 label
    print(f"scan checks with sha256: {1000 * mean / 4:.1f} ms per 36 x 256 x 256 scan, {megabytes / mean:.0f} MB/s")
    assert megabytes / mean >= 100
