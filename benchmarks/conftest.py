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
    from fewshotkit.device import describe_device

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
