"""benchmarks/gpu_check.sh --dry-run: the GPU check runs end to end on the CPU with tiny sizes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_figure(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] is True and report["device"] == "cpu"
    assert report["throughput"]["steps_per_s"] > 0 and report["throughput"]["reference_s_per_step_cpu"] == 5.90
    for part in ("training", "cpu_recipe"):
        assert report[part]["steps"] == 4 and report[part]["steps_per_s"] > 0
        for protocol in ("roy", "full-volume"):
            assert 0 <= report[part][protocol]["dice"] <= 100
    assert report["inference"]["s_per_query_slice"] > 0 and report["inference"]["s_per_query_volume"] > 0
    assert report["cuda_tests"]["ran"] is False


def test_gpu_check_rejects_unknown_arguments(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--bogus"], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 2 and "unknown argument '--bogus'" in done.stderr
