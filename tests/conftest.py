"""Shared fixtures: the real scans (found through ``FEWSHOTKIT_DATA``; skipped when absent, failed
with ``--require-data``), a hermetic plugin host, and one synthetic store with a trained and a
fixed-weight model shared by the whole test run."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import textwrap
from pathlib import Path
from types import ModuleType

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


#: a loose plugin file: the pooler ``scaled-mean`` (the masked average times ``gain``)
POOLER_PLUGIN = textwrap.dedent(
    """
    from fewshotkit import hookimpl
    from fewshotkit.method.composed import masked_average, resize_masks
    from fewshotkit.interfaces.pooler import PrototypePooler

    SCALE = 1.0


    class ScaledMean(PrototypePooler):
        def __init__(self, gain: float = SCALE):
            super().__init__()
            self.gain = gain

        def forward(self, features, masks):
            masks = resize_masks(masks, tuple(features.shape[-2:]))
            return list(self.gain * masked_average(features, masks)[:, None, :])


    @hookimpl
    def register_poolers(register):
        register("scaled-mean", ScaledMean, description="masked average times a gain")
    """
)


def benchmark_script(relative: str) -> ModuleType:
    """A script of benchmarks/ (``"studies/headline.py"``) loaded as a module, to test its functions."""
    path = REPO / "benchmarks" / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import does: dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--require-data", action="store_true",
                     help=f"fail, instead of skipping, the tests whose real scans are missing (see {DATA_SETTING})")


def require_data(subdir: Path, required: bool = False) -> Path:
    """``data_root() / subdir``, or skip the test (fail it when ``required``) with a reason that says
    how to point at a copy."""
    path = data_root() / subdir
    if not path.exists():
        reason = (f"real scans not found at {path}: set {DATA_SETTING} to the folder holding "
                  f"{subdir.as_posix()} (default: {DEFAULT_DATA.as_posix()} beside the repository)")
        if required:
            pytest.fail(f"{reason}; --require-data makes this a failure", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def chaos_dir(request: pytest.FixtureRequest) -> Path:
    """``$FEWSHOTKIT_DATA/CHAOST2/chaos_MR_T2_normalized`` (image_N.nii.gz / label_N.nii.gz). The
    benchmarks share these fixtures without the ``--require-data`` option: they skip."""
    return require_data(CHAOS_SUBDIR, request.config.getoption("--require-data", default=False))


@pytest.fixture(scope="session")
def acdc_dir(request: pytest.FixtureRequest) -> Path:
    """``$FEWSHOTKIT_DATA/ACDC`` (patientNNN_frameNN.h5)."""
    return require_data(ACDC_SUBDIR, request.config.getoption("--require-data", default=False))


@pytest.fixture(autouse=True)
def no_weight_downloads(monkeypatch, tmp_path_factory):
    """Tests never download weights: the hubs are offline and their caches are empty folders of the
    test run (HF_HOME, TORCH_HOME), which a test may fill with the files it needs."""
    caches = tmp_path_factory.getbasetemp() / "hub-caches"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(caches / "huggingface"))
    monkeypatch.setenv("TORCH_HOME", str(caches / "torch"))


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
def synthetic_store(tmp_path_factory) -> Path:
    """5 synthetic 96 x 96 volumes of 16 slices (seed 1) with a felzenszwalb set, shared by the
    whole test run: copy it before changing it."""
    return pseudolabelled_store(tmp_path_factory.mktemp("synthetic") / "syn.h5", volumes=5, seed=1, slices=16,
                                size=96)


@pytest.fixture(scope="session")
def trained_run(synthetic_store, tmp_path_factory) -> Path:
    """The test run's one trained model: ssl-alpnet-cpu, 2 steps on ``synthetic_store`` (a run
    directory; copy it before changing it). What it predicts depends on the torch build: assert on
    what any model gives (files, shapes, consistency), and use ``fixed_run`` for predictions."""
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training.loop import train

    out = tmp_path_factory.mktemp("trained") / "run"
    train(preset_spec("ssl-alpnet-cpu"), synthetic_store, out, steps=2, device="cpu", seed=0, show_progress=False)
    return out


@pytest.fixture(scope="session")
def fixed_run(synthetic_store, tmp_path_factory):
    """``fixed_run(*overrides) -> run directory`` of the fixed-weight model (tests/fixed_model.py) on
    ``synthetic_store``, built once per overrides (``--set`` style, e.g. "postprocess=largest-component")."""
    from fixed_model import fixed_run as build

    runs: dict[tuple[str, ...], Path] = {}

    def get(*overrides: str) -> Path:
        if overrides not in runs:
            runs[overrides] = build(synthetic_store, tmp_path_factory.mktemp("fixed") / "run", *overrides)
        return runs[overrides]

    return get


@pytest.fixture(scope="session")
def tiny_checkpoint(fixed_run) -> Path:
    """A checkpoint for file-level tests: the fixed-weight model's (no training, known predictions)."""
    return fixed_run() / "checkpoints" / "last.pt"
