"""Per-step training cost of the CPU presets of the threshold methods next to SSL-ALPNet-CPU, and
the inference cost of Q-Net's test-time prototype refinement. Report-only: nothing is asserted
about speed (the goal is a step within 1.5x of ssl-alpnet-cpu's), only that the steps train.

Run: ``OMP_NUM_THREADS=1 python -m pytest benchmarks/test_bench_methods.py -s`` (the ratios are
printed; keep the machine otherwise idle).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

BASELINE = "ssl-alpnet-cpu"
PRESETS = (BASELINE, "ssl-adnet-cpu", "ssl-qnet-cpu", "ssl-regional-cpu")
ROUNDS = 8
_step_seconds: dict[str, float] = {}  # preset -> median seconds per step, filled in PRESETS order


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    from fewshotkit.ingest.synthetic import ingest_synthetic
    from fewshotkit.pseudolabel import run_pseudolabeler

    path = ingest_synthetic(tmp_path_factory.mktemp("bench") / "syn.h5", volumes=6, slices=16, size=256, quiet=True)
    run_pseudolabeler(path, "felzenszwalb", {}, jobs=1)
    return path


@pytest.mark.parametrize("preset", PRESETS)
def test_training_step_cost(benchmark, store, preset):
    from fewshotkit.episodes.filters import allowed_slices
    from fewshotkit.episodes.folds import get_fold
    from fewshotkit.episodes.sampling import SelfSupervisedSampler
    from fewshotkit.spec import build_method, preset_spec
    from fewshotkit.store.reader import SliceStore
    from fewshotkit.training.augment import Augmenter
    from fewshotkit.training.batches import EpisodeBatcher
    from fewshotkit.training.config import TrainingConfig

    spec = preset_spec(preset)
    config = TrainingConfig.from_dict(spec.training)
    torch.manual_seed(0)
    method = build_method(spec).train()
    optimizer = torch.optim.SGD(method.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    s = SliceStore(store)
    sampler = SelfSupervisedSampler(s, s.resolve_pseudolabel_set(None), allowed_slices(s, get_fold(s, 0).train))
    batcher = EpisodeBatcher(sampler, "ssl", spec.image_size, Augmenter(config.aug, torch.Generator().manual_seed(0)),
                             torch.device("cpu"), config.batch_size)
    rng = np.random.default_rng(0)
    times, losses = [], []

    def step() -> None:
        t0 = time.perf_counter()
        episode, _ = batcher.next(rng)
        loss = method(episode).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())

    benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    median = float(np.median(times[1:]))  # the warm-up round is not counted
    _step_seconds[preset] = median
    base = _step_seconds.get(BASELINE)
    ratio = None if base is None else median / base
    benchmark.extra_info.update(preset=preset, batch_size=config.batch_size, step_s=round(median, 4),
                                ratio_to_alpnet_cpu=None if ratio is None else round(ratio, 3),
                                threads=torch.get_num_threads())
    print(f"\n{preset}: {median * 1e3:.0f} ms per step of {config.batch_size} episodes"
          + ("" if ratio is None else f", {ratio:.2f}x {BASELINE}"))
    assert all(np.isfinite(losses))


@pytest.mark.parametrize("refine_steps", [0, 30])
def test_qnet_refinement_inference_cost(benchmark, refine_steps):
    from fewshotkit.interfaces.method import Episode
    from fewshotkit.spec import apply_overrides, build_method, preset_spec

    spec = apply_overrides(preset_spec("ssl-qnet-cpu"), [f"classifier.refine_steps={refine_steps}"])
    torch.manual_seed(0)
    method = build_method(spec).eval()
    size = spec.image_size
    fg = torch.zeros(1, 1, 1, size, size)
    fg[..., size // 4 : size // 2, size // 4 : size // 2] = 1
    episode = Episode(torch.randn(1, 1, 1, size, size), torch.cat([1 - fg, fg], dim=2), torch.randn(1, 8, 1, size, size))

    def infer() -> torch.Tensor:
        with torch.inference_mode():
            return method(episode).logits

    logits = benchmark.pedantic(infer, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(refine_steps=refine_steps, query_slices=8)
    assert logits.shape == (1, 8, 2, size, size) and torch.isfinite(logits).all()
