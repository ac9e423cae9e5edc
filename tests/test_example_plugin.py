"""The documented third-party plugin package installs and registers through its entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "plugins" / "fewshotkit-quadrant-pooler"


@pytest.mark.slow
def test_example_plugin_installs_and_is_listed(tmp_path):
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(EXAMPLE)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]

    env = {k: v for k, v in os.environ.items() if not k.startswith("FEWSHOTKIT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), env.get("PYTHONPATH", "")])
    listed = subprocess.run(
        [sys.executable, "-m", "fewshotkit", "components", "pooler", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    owners = {c["name"]: c["plugin"] for c in json.loads(listed.stdout)}
    assert owners.get("quadrant") == "quadrant-pooler"

    # and the component it registers honours the pooler contract
    code = (
        "import torch\n"
        "from fewshotkit.host.plugin_host import get_registry\n"
        "pooler = get_registry().create('pooler', 'quadrant')\n"
        "feats = torch.randn(1, 8, 8, 8)\n"
        "masks = torch.zeros(1, 2, 32, 32); masks[:, 1, 4:20, 4:20] = 1; masks[:, 0] = 1 - masks[:, 1]\n"
        "protos = pooler(feats, masks)\n"
        "assert len(protos) == 2 and all(p.ndim == 2 and p.shape[1] == 8 for p in protos)\n"
        "assert all(torch.isfinite(p).all() for p in protos)\n"
    )
    checked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert checked.returncode == 0, checked.stderr[-2000:]
