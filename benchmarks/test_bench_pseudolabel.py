"""Felzenszwalb over CHAOS-T2 (718 slices) with 1 vs 2 processes (target: >= 1.7x faster on 2)."""

from __future__ import annotations

import time

import pytest

from fewshotkit.ingest.chaos import ingest_chaos_t2
from fewshotkit.pseudolabel import run_pseudolabeler
from fewshotkit.store.reader import SliceStore


@pytest.mark.data
def test_pseudolabel_speedup(chaos_dir, tmp_path, fresh_host):
    store = ingest_chaos_t2(chaos_dir, tmp_path / "chaos.h5", quiet=True)
    times = {}
    for jobs in (1, 2):
        t0 = time.perf_counter()
        result = run_pseudolabeler(store, "felzenszwalb", {"min_size": 400}, jobs=jobs, force=True)
        times[jobs] = time.perf_counter() - t0
        assert result.computed
    s = SliceStore(store)
    assert s.pseudolabel("felzenszwalb", "1").max() > 1
    speedup = times[1] / times[2]
    print(f"felzenszwalb on 718 slices: 1 job {times[1]:.1f} s, 2 jobs {times[2]:.1f} s, speed-up {speedup:.2f}x")
    assert speedup >= 1.7
