"""Benchmark set-up: machine info in every saved run, and the test suite's data fixtures.

pytest-benchmark stores ``machine_info`` with each saved run (``--benchmark-autosave``); the
device and library versions added here make runs from different machines comparable.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "fewshotkit_test_fixtures", Path(__file__).resolve().parents[1] / "tests" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

# the fixtures of tests/conftest.py (real data, hermetic plugin host), shared with the benchmarks
chaos_dir = _fixtures.chaos_dir
acdc_dir = _fixtures.acdc_dir
fresh_host = _fixtures.fresh_host
run_cli = _fixtures.run_cli


def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
    """Add the compute device, thread count and library versions to the saved machine info."""
    import numpy
    import timm
    import torch

    import fewshotkit
    from fewshotkit.core.device import describe_device

    machine_info["fewshotkit"] = {
        "version": fewshotkit.__version__,
        "device": describe_device(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": numpy.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
    }


@pytest.fixture
def seconds(benchmark):
    """``seconds("median")``: a timing statistic of ``benchmark`` in seconds, or None when timing
    is off (``--benchmark-disable``, the CI smoke run), so speed targets are only checked when timed."""

    def get(stat: str = "median") -> float | None:
        return None if benchmark.disabled else getattr(benchmark.stats.stats, stat)

    return get


@pytest.fixture(scope="session")
def ssl_store(tmp_path_factory):
    """A synthetic store (6 volumes of 16 slices, 256 px) with a felzenszwalb set, for training steps."""
    from fewshotkit.data.ingest.synthetic import ingest_synthetic
    from fewshotkit.data.pseudolabel import run_pseudolabeler

    path = ingest_synthetic(tmp_path_factory.mktemp("bench") / "syn.h5", volumes=6, slices=16, size=256, quiet=True)
    run_pseudolabeler(path, "felzenszwalb", {}, jobs=2)
    return path


class SSLStep:
    """One self-supervised training step of ``spec`` on fold 0 of ``store`` with the spec's own
    optimiser, as the training loop runs it; each call records data (+ augmentation) and model
    (forward, backward, update) seconds and the loss."""

    def __init__(self, spec, store) -> None:
        import numpy as np
        import torch

        from fewshotkit.data.episodes.filters import allowed_slices
        from fewshotkit.data.episodes.folds import get_fold
        from fewshotkit.data.episodes.sampling import SelfSupervisedSampler
        from fewshotkit.method.build import build_method
        from fewshotkit.data.store.reader import SliceStore
        from fewshotkit.training.augment import Augmenter
        from fewshotkit.training.batches import EpisodeBatcher
        from fewshotkit.training.config import TrainingConfig
        from fewshotkit.training.optim import build_optimizer, optimizer_groups

        self.config = TrainingConfig.from_dict(spec.training)
        torch.manual_seed(0)
        self.method = build_method(spec).train()
        self.optimizer = build_optimizer(optimizer_groups(self.method, self.config), self.config)
        s = SliceStore(store)
        sampler = SelfSupervisedSampler(s, s.resolve_pseudolabel_set(None), allowed_slices(s, get_fold(s, 0).train))
        self.batcher = EpisodeBatcher(sampler, "ssl", spec.image_size,
                                      Augmenter(self.config.aug, torch.Generator().manual_seed(0)),
                                      torch.device("cpu"), self.config.batch_size)
        self.rng = np.random.default_rng(0)
        self.amp = bool(self.config.amp)  # bfloat16 autocast, as `train --amp` on the CPU
        self.data: list[float] = []
        self.model: list[float] = []
        self.losses: list[float] = []

    def __call__(self) -> None:
        import time

        import torch

        t0 = time.perf_counter()
        episode, _ = self.batcher.next(self.rng)
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp):
            loss = self.method(episode).loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.data.append(t1 - t0)
        self.model.append(time.perf_counter() - t1)
        self.losses.append(loss.item())


@pytest.fixture
def ssl_step():
    """The :class:`SSLStep` class (a fixture, so benchmark modules need not import this conftest)."""
    return SSLStep
