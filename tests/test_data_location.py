"""The real scans are found through one setting, FEWSHOTKIT_DATA, by the tests, the benchmarks and
the GPU check; without them a test skips with a reason that names the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ACDC_SUBDIR, CHAOS_SUBDIR, REPO, benchmark_script, data_root, require_data


def test_the_setting_points_at_a_copy_of_the_scans(monkeypatch, tmp_path):
    (tmp_path / CHAOS_SUBDIR).mkdir(parents=True)
    monkeypatch.setenv("FEWSHOTKIT_DATA", str(tmp_path))
    assert data_root() == tmp_path.resolve()
    assert require_data(CHAOS_SUBDIR) == tmp_path.resolve() / CHAOS_SUBDIR


def test_a_relative_setting_is_read_from_the_current_folder(monkeypatch, tmp_path):
    (tmp_path / "scans").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEWSHOTKIT_DATA", "scans")
    assert data_root() == (tmp_path / "scans").resolve()


def test_without_the_setting_the_scans_are_beside_the_repository(monkeypatch):
    monkeypatch.delenv("FEWSHOTKIT_DATA", raising=False)
    assert data_root() == (REPO.parent / "shared" / "data").resolve()


def test_missing_scans_skip_with_a_reason_naming_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("FEWSHOTKIT_DATA", str(tmp_path))
    with pytest.raises(pytest.skip.Exception) as info:
        require_data(ACDC_SUBDIR)
    assert "FEWSHOTKIT_DATA" in str(info.value) and str(tmp_path / ACDC_SUBDIR) in str(info.value)


def test_the_gpu_check_reads_the_same_setting(monkeypatch, tmp_path):
    gpu_check = benchmark_script("gpu_check.py")
    monkeypatch.setenv("FEWSHOTKIT_DATA", str(tmp_path))
    assert gpu_check.default_chaos_dir() == Path(tmp_path) / CHAOS_SUBDIR
    monkeypatch.delenv("FEWSHOTKIT_DATA")
    assert gpu_check.default_chaos_dir() == REPO.parent / "shared" / "data" / CHAOS_SUBDIR


def test_require_data_turns_the_skip_into_a_failure(monkeypatch, tmp_path):
    monkeypatch.setenv("FEWSHOTKIT_DATA", str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as info:
        require_data(ACDC_SUBDIR, required=True)
    assert "--require-data" in str(info.value) and str(tmp_path / ACDC_SUBDIR) in str(info.value)


@pytest.mark.slow
def test_the_require_data_option_fails_a_run_without_the_scans(tmp_path):
    env = {**os.environ, "FEWSHOTKIT_DATA": str(tmp_path), "OMP_NUM_THREADS": "1"}
    required = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--require-data",
                               "tests/test_ingest.py::test_acdc_acceptance"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300)
    assert required.returncode == 1 and "--require-data makes this a failure" in required.stdout, required.stdout[-2000:]
