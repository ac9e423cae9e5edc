"""The cost of `segment`'s common frame on a large query: a 512 x 512 x 120 scan in 0.7 mm pixels,
reoriented (LPS -> RAS) and resampled to a 1.25 mm support on one canvas, and the label map back.

Run: ``python -m pytest -s benchmarks/test_bench_frame.py``. Reported, not judged: it is one
resampling per scan, beside minutes of model inference.
"""

from __future__ import annotations

import numpy as np

from fewshotkit.evaluation.frame import common_frame


def test_a_large_query_into_the_frame_and_back(benchmark, seconds):
    support, query = common_frame((40, 256, 256), np.diag([1.25, 1.25, 5.0, 1.0]), (5.0, 1.25, 1.25),
                                  (120, 512, 512), np.diag([-0.7, -0.7, 3.0, 1.0]), (3.0, 0.7, 0.7), "RAS")
    image = np.random.default_rng(0).standard_normal((120, 512, 512), dtype=np.float32)

    def round_trip():
        framed = query.apply(image)
        return framed, query.undo((framed > 0).astype(np.uint8))

    framed, back = benchmark(round_trip)
    assert framed.shape == (120, 287, 287) and back.shape == image.shape
    assert support.canvas == (287, 287)
    took = seconds("mean")
    if took is not None:
        print(f"frame of a 512 x 512 x 120 query (0.7 -> 1.25 mm, LPS -> RAS) and back: {took:.2f} s")
