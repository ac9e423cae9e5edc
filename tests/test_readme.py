"""The README: short, its links resolve, its headline table is the bench output, and the
walk-through "On your own scans" runs as written on small synthetic NIfTI scans."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import benchmark_script

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# what makes the walk-through's training take seconds: the step count and a small model
TINY_TRAINING = ["--steps", "2", "--set", "image_size=64", "--set", "backbone.width=8",
                 "--set", "backbone.out_channels=16", "--set", "training.batch_size=1"]


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def commands(block: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments and blank lines left out."""
    joined = block.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 180


def test_every_relative_link_resolves():
    text = README.read_text(encoding="utf-8")
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t]
    assert targets and [t for t in targets if not (ROOT / t).exists()] == []


@pytest.mark.parametrize("page", [README, ROOT / "docs" / "results.md"])
def test_regenerating_the_headline_table_changes_nothing(page):
    headline = benchmark_script("studies/headline.py")
    text = page.read_text(encoding="utf-8")
    assert headline.update(text, (ROOT / "docs" / "results.md").read_text(encoding="utf-8")) == text
    assert "| **" in text.split("<!-- headline:")[1].split("<!-- /headline -->")[0]


def _write(path: Path, array_zhw: np.ndarray, dtype: type) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([2.5, 2.5, 5.0, 1.0])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(array_zhw.transpose(2, 1, 0)).astype(dtype), affine), str(path))


def synthetic_scans(root: Path) -> None:
    """scans/image_1..5 with label_1..5 (1 = liver, 2 = spleen) and new/image_42, as the README names them."""
    from fewshotkit.data.ingest.synthetic import phantom

    for index, (folder, scan) in enumerate([("scans", i) for i in range(1, 6)] + [("new", 42)]):
        image, label = phantom(3, index, 12, 64)
        _write(root / folder / f"image_{scan}.nii.gz", image, np.float32)
        if folder == "scans":
            _write(root / folder / f"label_{scan}.nii.gz", np.select([label == 1, label == 4], [1, 2], 0), np.uint8)


@pytest.mark.slow
def test_the_own_scans_walk_through_runs_as_written(tmp_path):
    synthetic_scans(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    shell = [argv for block in blocks(section("On your own scans"), "bash") for argv in commands(block)]
    assert [argv[:2] for argv in shell] == [["fewshotkit", "ingest"], ["fewshotkit", "pseudolabel"],
                                             ["fewshotkit", "train"], ["fewshotkit", "eval"], ["fewshotkit", "segment"]]
    for argv in shell:
        extra = TINY_TRAINING if argv[1] == "train" else []
        result = subprocess.run([sys.executable, "-m", "fewshotkit", *argv[1:], *extra], cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{shlex.join(argv)}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert (tmp_path / "new" / "labels_42.nii.gz").is_file() and (tmp_path / "new" / "labels_42.png").is_file()
    (python,) = blocks(section("On your own scans"), "python")
    check = "\nassert labels.dtype.name == 'uint8' and labels.shape == (12, 64, 64) and set(labels.flat) <= {0, 1, 2}\n"
    result = subprocess.run([sys.executable, "-c", python + check], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
