"""Inference speed of the evaluation path: one query slice, one query volume (batched), one whole
protocol fold (also with the support's orientation searched), and the 3D metrics. Correctness is asserted next to each timing.

Run: ``python -m pytest benchmarks/test_bench_inference.py`` (add ``--benchmark-autosave`` to
keep the run for ``pytest-benchmark compare``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fewshotkit.evaluation.inference import MethodPredictor
from fewshotkit.evaluation.metrics import confusion
from fewshotkit.evaluation.options import InferenceOptions
from fewshotkit.evaluation.protocol import evaluate_fold
from fewshotkit.method.spec import preset_spec
from fewshotkit.method.build import build_method


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from fewshotkit.data.ingest.synthetic import ingest_synthetic
    from fewshotkit.data.store.reader import SliceStore

    path = tmp_path_factory.mktemp("bench") / "synthetic.h5"
    ingest_synthetic(path, volumes=5, seed=0, slices=24, size=128, quiet=True)
    return SliceStore(path)


@pytest.fixture(scope="module", params=["ssl-alpnet-cpu", "alpnet-init"])
def predictor(request):
    from fewshotkit.core.device import resolve_device

    device = resolve_device("auto")
    spec = preset_spec(request.param)
    if request.param == "alpnet-init":  # the paper's ResNet-101 is too slow for a CPU smoke run
        spec.parts["backbone"] = dict(preset_spec("ssl-alpnet-cpu").parts["backbone"])
        spec.image_size = 128
    torch.manual_seed(0)
    method = build_method(spec).to(device).eval()
    return MethodPredictor(method, spec.image_size, device, batch_size=16)


def _support(store):
    vol = store.volumes[0]
    z = int(store.class_slices(1, vol)[len(store.class_slices(1, vol)) // 2])
    return store.image(vol)[[z]], store.label(vol)[[z]] == 1


def test_inference_per_slice(benchmark, store, predictor):
    images, masks = _support(store)
    query = store.image(store.volumes[1])[[12]]

    def run():
        out = predictor(images, masks, query)
        _synchronize(predictor.device)
        return out

    out = benchmark(run)
    assert out.shape == (1, 128, 128) and out.dtype == bool


def test_inference_per_volume(benchmark, store, predictor):
    images, masks = _support(store)
    volume = store.image(store.volumes[1])

    def run():
        out = predictor(images, masks, volume)
        _synchronize(predictor.device)
        return out

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert out.shape == volume.shape
    # batching must not change the answer: slice by slice gives the same masks
    single = np.concatenate([predictor(images, masks, volume[[z]]) for z in (0, 11, 23)])
    assert np.array_equal(single, out[[0, 11, 23]])


def test_protocol_fold(benchmark, store, predictor):
    from fewshotkit.data.episodes.folds import get_fold

    fold = get_fold(store, 0)
    scores = benchmark.pedantic(lambda: evaluate_fold(store, fold, predictor), rounds=1, warmup_rounds=0)
    assert set(scores.per_class()) == set(store.classes.values())
    assert all(0.0 <= v <= 100.0 for v in scores.per_class().values())


@pytest.mark.parametrize("orientation", ["as-is", "search"])
def test_protocol_fold_support_orientation(benchmark, store, orientation):
    """The price of ``support_orientation="search"`` (about eight forward passes per chunk) on one fold."""
    from fewshotkit.core.device import resolve_device
    from fewshotkit.data.episodes.folds import get_fold

    torch.manual_seed(0)
    spec = preset_spec("ssl-alpnet-cpu")
    device = resolve_device("auto")
    predictor = MethodPredictor(build_method(spec).to(device).eval(), spec.image_size, device, batch_size=16)
    fold = get_fold(store, 0)
    scores = benchmark.pedantic(lambda: evaluate_fold(store, fold, predictor,
                                                              options=InferenceOptions(support_orientation=orientation)),
                                rounds=1, warmup_rounds=0)
    assert set(scores.support_turns) == (set(fold.queries) if orientation == "search" else set())


def test_metrics_per_volume(benchmark):
    rng = np.random.default_rng(0)
    pred = rng.random((40, 256, 256)) > 0.5
    truth = rng.random((40, 256, 256)) > 0.5
    counts = benchmark(confusion, pred, truth)
    assert counts.tp == int((pred & truth).sum()) and counts.fp + counts.tp == int(pred.sum())
