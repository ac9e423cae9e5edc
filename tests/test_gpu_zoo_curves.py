"""benchmarks/gpu_zoo_curves.sh --dry-run: the zoo's GPU curves run end to end on the CPU with a
synthetic store and a narrow encoder; its bad arguments and a missing scan folder are refused."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_zoo_curves.sh"
METHODS = ("SSL-ALPNet", "ADNet", "Q-Net", "RPT", "GMRD")


@pytest.mark.slow
def test_the_dry_run_trains_every_method_and_draws_their_curves(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert (tmp_path / "dice_vs_time_zoo_gpu.png").stat().st_size > 10_000
    summary = (tmp_path / "curves.txt").read_text()
    for method in METHODS:
        curve = [json.loads(line) for line in (tmp_path / "runs" / f"{method}-CPU-recipe" / "curve.jsonl")
                 .read_text().splitlines()]
        assert [point["step"] for point in curve] == [0, 2, 4]
        assert f"{method} (CPU recipe): last step 4" in summary
    table = (tmp_path / "results.md").read_text()
    assert "the validation scans" in table and all(f"| {m} (CPU recipe) |" in table for m in METHODS)


def test_an_unknown_argument_is_refused(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "unknown argument '--bogus'" in done.stderr


def test_a_missing_scan_folder_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    done = subprocess.run(["bash", str(SCRIPT), "--out", str(tmp_path / "out"), "--data", str(missing)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and f"CHAOS-T2 not found at '{missing}'" in done.stderr
    assert not (tmp_path / "out" / "bench.log").exists()


def test_an_interpreter_without_fewshotkit_is_named(tmp_path):
    bare = tmp_path / "python"
    bare.write_text("#!/bin/sh\nexit 1\n")  # an interpreter that finds no fewshotkit distribution
    bare.chmod(0o755)
    done = subprocess.run(["bash", str(SCRIPT), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHON": str(bare)})
    assert done.returncode == 2 and f"fewshotkit is not installed for {bare}" in done.stderr
