"""``fewshotkit plugins new KIND NAME``: the package it writes installs with pip and passes its own
contract tests as written; the contract checks it runs catch a broken component."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fewshotkit.apps.plugin_template import TEMPLATES
from fewshotkit.host.conformance import check_component, check_pooler, check_postprocessor, check_pseudolabeler
from fewshotkit.interfaces.pooler import PrototypePooler
from fewshotkit.interfaces.postprocessor import Postprocessor
from fewshotkit.interfaces.pseudolabeler import PseudoLabeler


def _generated_component(run_cli, tmp_path: Path, monkeypatch, kind: str, name: str):
    result = run_cli("plugins", "new", kind, name, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    package = tmp_path / f"fewshotkit-{name}"
    module = "fewshotkit_" + name.replace("-", "_")
    assert sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()) == sorted(
        ["README.md", "pyproject.toml", f"{module}/__init__.py", f"{module}/component.py", f"tests/test_{module}.py"])
    monkeypatch.syspath_prepend(str(package))
    component = importlib.import_module(f"{module}.component")
    (cls,) = [c for c in vars(component).values() if isinstance(c, type) and c.__module__ == component.__name__]
    return package, cls


@pytest.mark.parametrize("kind", list(TEMPLATES))
def test_every_kind_of_generated_component_honours_its_contract(kind, run_cli, tmp_path, monkeypatch):
    package, cls = _generated_component(run_cli, tmp_path, monkeypatch, kind, f"demo-{kind}")
    check_component(kind, cls())
    pyproject = (package / "pyproject.toml").read_text()
    assert "[project.entry-points.fewshotkit]" in pyproject and f'demo-{kind} = "fewshotkit_demo_{kind}"' in pyproject
    interface = cls.__mro__[1]
    assert interface.__doc__.strip().splitlines()[0] in cls.__doc__  # the contract's docstring


@pytest.mark.slow
def test_the_generated_package_installs_with_pip_and_passes_its_test(run_cli, tmp_path):
    assert run_cli("plugins", "new", "pooler", "max-pool", "--out", str(tmp_path)).exit_code == 0
    package, site = tmp_path / "fewshotkit-max-pool", tmp_path / "site"
    # into a folder of its own, so the environment's plugins stay as they were
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--no-index", "--target", str(site), str(package)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path]), "OMP_NUM_THREADS": "1"}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout
    listed = subprocess.run([sys.executable, "-m", "fewshotkit", "components", "pooler", "max-pool"],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert listed.returncode == 0 and "max-pool" in listed.stdout, listed.stdout + listed.stderr


@pytest.mark.parametrize("args, message", [
    (["pooler", "Max_Pool"], "lower-case letters"),
    (["pooler", "alp"], "a plugin named 'alp' is loaded already"),
    (["pooler", "masked-avg"], "taken by pooler"),
])
def test_bad_names_are_refused_in_one_line(args, message, run_cli, tmp_path):
    result = run_cli("plugins", "new", *args, "--out", str(tmp_path))
    assert result.exit_code != 0 and message in result.output and not any(tmp_path.iterdir())


def test_an_existing_package_folder_is_kept(run_cli, tmp_path):
    (tmp_path / "fewshotkit-max-pool").mkdir()
    (tmp_path / "fewshotkit-max-pool" / "mine.txt").write_text("keep")
    result = run_cli("plugins", "new", "pooler", "max-pool", "--out", str(tmp_path))
    assert result.exit_code != 0 and "exists already" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["fewshotkit-max-pool"]
    assert (tmp_path / "fewshotkit-max-pool" / "mine.txt").read_text() == "keep"


def test_plugins_without_a_subcommand_still_lists_the_plugins(run_cli):
    result = run_cli("plugins", "--json")
    assert result.exit_code == 0 and '"name": "alp"' in result.output


class VectorPooler(PrototypePooler):
    def forward(self, features, masks):
        return [features.mean(dim=(0, 2, 3)) for _ in range(masks.shape[1])]  # (C,), not (P_c, C)


class Dilate(Postprocessor):
    def __call__(self, mask, spacing=None):
        from scipy import ndimage

        return ndimage.binary_dilation(mask)  # grows again when applied twice


class Gaps(PseudoLabeler):
    def __call__(self, image, spacing=None):
        return np.where(image > np.median(image), 3, 1).astype(np.int32)  # ids 1 and 3: a gap


@pytest.mark.parametrize("check, component", [
    (lambda c: check_pooler(c), VectorPooler()),
    (check_postprocessor, Dilate()),
    (check_pseudolabeler, Gaps()),
])
def test_the_contract_checks_catch_a_broken_component(check, component):
    torch.manual_seed(0)
    with pytest.raises(AssertionError):
        check(component)
