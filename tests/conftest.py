"""Shared fixtures: the real data in ../shared/data (skipped when absent) and a hermetic plugin host."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CHAOS_DIR = SHARED_DATA / "CHAOST2" / "chaos_MR_T2_normalized"
ACDC_DIR = SHARED_DATA / "ACDC"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (it lives in ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def chaos_dir() -> Path:
    """../shared/data/CHAOST2/chaos_MR_T2_normalized (image_N.nii.gz / label_N.nii.gz)."""
    return _require(CHAOS_DIR)


@pytest.fixture(scope="session")
def acdc_dir() -> Path:
    """../shared/data/ACDC (patientNNN_frameNN.h5)."""
    return _require(ACDC_DIR)


@pytest.fixture
def digest():
    """``digest(path) -> sha256 hex``: compare files by hash so a failing test prints two lines, not megabytes."""
    return lambda path: hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def fresh_host(monkeypatch):
    """Reset the process-wide plugin host before and after a test, with no plugin env vars."""
    from fewshotkit.host import plugin_host

    for var in ("FEWSHOTKIT_PLUGINS_DIR", "FEWSHOTKIT_DISABLE_PLUGINS", "FEWSHOTKIT_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    plugin_host.reset()
    yield plugin_host
    plugin_host.reset()


@pytest.fixture
def run_cli(fresh_host):
    """Run the CLI in-process: ``run_cli("components", "--json") -> click Result``."""
    from click.testing import CliRunner

    from fewshotkit.cli import cli

    def run(*args: str, **kwargs):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kwargs)

    return run


def pseudolabelled_store(path: Path, *, min_size: int | None = None, **synthetic) -> Path:
    """A synthetic store at ``path`` (``ingest_synthetic`` keyword arguments) with a felzenszwalb set."""
    from fewshotkit.data.ingest.synthetic import ingest_synthetic
    from fewshotkit.data.pseudolabel import run_pseudolabeler

    ingest_synthetic(path, quiet=True, **synthetic)
    run_pseudolabeler(path, "felzenszwalb", {} if min_size is None else {"min_size": min_size}, jobs=1)
    return path
