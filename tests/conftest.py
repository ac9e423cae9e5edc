"""Shared fixtures: the real scans (found through ``FEWSHOTKIT_DATA``, skipped when absent) and a
hermetic plugin host."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_SETTING = "FEWSHOTKIT_DATA"
DEFAULT_DATA = Path("..") / "shared" / "data"  # relative to the repository root
CHAOS_SUBDIR = Path("CHAOST2") / "chaos_MR_T2_normalized"
ACDC_SUBDIR = Path("ACDC")


def data_root() -> Path:
    """The folder holding the real scans: ``$FEWSHOTKIT_DATA`` (a relative value is read from the
    current folder), else ``../shared/data`` beside the repository."""
    value = os.environ.get(DATA_SETTING)
    if value:
        return Path(value).expanduser().resolve()
    return (REPO / DEFAULT_DATA).resolve()


def require_data(subdir: Path) -> Path:
    """``data_root() / subdir``, or skip the test with a reason that says how to point at a copy."""
    path = data_root() / subdir
    if not path.exists():
        pytest.skip(f"real scans not found at {path}: set {DATA_SETTING} to the folder holding "
                    f"{subdir.as_posix()} (default: {DEFAULT_DATA.as_posix()} beside the repository)")
    return path


@pytest.fixture(scope="session")
def chaos_dir() -> Path:
    """``$FEWSHOTKIT_DATA/CHAOST2/chaos_MR_T2_normalized`` (image_N.nii.gz / label_N.nii.gz)."""
    return require_data(CHAOS_SUBDIR)


@pytest.fixture(scope="session")
def acdc_dir() -> Path:
    """``$FEWSHOTKIT_DATA/ACDC`` (patientNNN_frameNN.h5)."""
    return require_data(ACDC_SUBDIR)


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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An ssl-alpnet-cpu run trained one step on small synthetic phantoms (64 x 64): for file-level tests."""
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training.loop import train

    root = tmp_path_factory.mktemp("tiny-run")
    store = pseudolabelled_store(root / "syn.h5", volumes=5, seed=2, slices=12, size=64)
    return train(preset_spec("ssl-alpnet-cpu"), store, root / "run", steps=1, device="cpu", show_progress=False)
