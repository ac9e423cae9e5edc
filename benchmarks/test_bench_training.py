"""Training throughput on the CPU: episodes per second per backbone, and the split between data
(+ augmentation) time and model time (forward, backward, optimiser step).

Run: ``python -m pytest benchmarks/test_bench_training.py`` (``--benchmark-disable`` for a smoke
run). Asserts that data + augmentation stays under 10 % of a step and that the step trains.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

_RESNET18 = {"type": "timm", "model": "resnet18", "in_channels": 1, "output_stride": 8}
CASES = {
    # name: (image size, backbone table or None for the ssl-alpnet-cpu preset's, rounds)
    "light-128 (ssl-alpnet-cpu)": (128, None, 10),
    "light-256": (256, None, 5),
    "resnet18-128": (128, _RESNET18, 5),
    "resnet18-256": (256, _RESNET18, 3),
    "resnet101-256 (paper)": (256, {"type": "deeplab-resnet101"}, 2),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    from fewshotkit.ingest.synthetic import ingest_synthetic
    from fewshotkit.pseudolabel import run_pseudolabeler

    path = ingest_synthetic(tmp_path_factory.mktemp("bench") / "syn.h5", volumes=6, slices=16, size=256, quiet=True)
    run_pseudolabeler(path, "felzenszwalb", {}, jobs=2)
    return path


def _spec(image_size: int, backbone: dict | None):
    from fewshotkit.spec import preset_spec

    spec = preset_spec("ssl-alpnet-cpu")
    spec.image_size = image_size
    if backbone is not None:
        spec.parts["backbone"] = dict(backbone)
    return spec


@pytest.mark.parametrize("case", list(CASES))
def test_training_step_throughput(benchmark, store, case):
    from fewshotkit.episodes.filters import allowed_slices
    from fewshotkit.episodes.folds import get_fold
    from fewshotkit.episodes.sampling import SelfSupervisedSampler
    from fewshotkit.spec import build_method
    from fewshotkit.store.reader import SliceStore
    from fewshotkit.training.augment import Augmenter
    from fewshotkit.training.batches import EpisodeBatcher
    from fewshotkit.training.config import TrainingConfig

    image_size, backbone, rounds = CASES[case]
    spec = _spec(image_size, backbone)
    config = TrainingConfig.from_dict(spec.training)
    torch.manual_seed(0)
    method = build_method(spec).train()
    optimizer = torch.optim.SGD(method.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    s = SliceStore(store)
    fold = get_fold(s, 0)
    sampler = SelfSupervisedSampler(s, s.resolve_pseudolabel_set(None), allowed_slices(s, fold.train))
    batcher = EpisodeBatcher(sampler, "ssl", spec.image_size, Augmenter(config.aug, torch.Generator().manual_seed(0)),
                             torch.device("cpu"), config.batch_size)
    rng = np.random.default_rng(0)
    times = {"data": [], "model": []}
    losses = []

    def step() -> None:
        t0 = time.perf_counter()
        episode, _ = batcher.next(rng)
        t1 = time.perf_counter()
        loss = method(episode).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        t2 = time.perf_counter()
        times["data"].append(t1 - t0)
        times["model"].append(t2 - t1)
        losses.append(loss.item())

    benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=1)
    data, model = np.median(times["data"]), np.median(times["model"])
    episodes_per_s = config.batch_size / (data + model)
    benchmark.extra_info.update(
        backbone=spec.parts["backbone"]["type"], image_size=spec.image_size, batch_size=config.batch_size,
        episodes_per_s=round(float(episodes_per_s), 3), data_s=round(float(data), 5), model_s=round(float(model), 4),
        data_fraction=round(float(data / (data + model)), 4), threads=torch.get_num_threads(),
    )
    print(f"\n{case}: {episodes_per_s:.2f} episodes/s (batch {config.batch_size}); "
          f"data+aug {data * 1e3:.1f} ms, model {model * 1e3:.1f} ms per step ({100 * data / (data + model):.1f} %)")
    assert all(np.isfinite(losses))
    assert data < 0.10 * (data + model), f"data + augmentation take {100 * data / (data + model):.1f} % of a step"
