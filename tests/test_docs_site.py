"""The manual: every page under docs/ is in the MkDocs navigation, and ``mkdocs build --strict``
(a broken link, a missing page or an API docstring mkdocstrings cannot read fails it) passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def nav_pages() -> set[str]:
    """The Markdown files named in mkdocs.yml's ``nav`` (relative to docs/)."""
    yaml = pytest.importorskip("yaml", reason="PyYAML reads mkdocs.yml (installed with the dev extra)")
    # mkdocs.yml holds a !!python/name tag for the mermaid fence; the navigation needs none of it
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").replace("!!python/name:", "")
    pages: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, str) and node.endswith(".md"):
            pages.add(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(text)["nav"])
    return pages


def test_every_page_is_in_the_navigation():
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "plugins" not in p.relative_to(DOCS).parts}
    assert pages - nav_pages() == set(), "add these pages to mkdocs.yml's nav"
    assert nav_pages() - pages == set(), "mkdocs.yml's nav names pages that do not exist"


def test_the_manual_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs builds the manual (installed with the dev extra)")
    pytest.importorskip("material", reason="mkdocs-material is the manual's theme (installed with the dev extra)")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings renders the API pages (installed with the dev extra)")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "interfaces" / "index.html").read_text().count("PrototypePooler") > 0


def test_every_study_states_its_question_and_is_listed_on_the_bench_page():
    page = (DOCS / "bench.md").read_text(encoding="utf-8")
    for study in sorted((ROOT / "benchmarks" / "studies").glob("*.toml")):
        first = study.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# Question: ") and first.endswith("?"), study.name
        assert f"| `{study.name}` | {first.removeprefix('# Question: ')} |" in page, study.name
