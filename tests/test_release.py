"""One version everywhere: CHANGELOG.md's latest release, ``fewshotkit --version``, CITATION.cff."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fewshotkit.cli import cli
from fewshotkit.core.version import __version__

ROOT = Path(__file__).resolve().parents[1]
RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$")


def releases() -> list[tuple[str, str]]:
    """(version, date) of every release heading in CHANGELOG.md, newest first."""
    lines = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").splitlines()
    matches = (RELEASE.match(line) for line in lines)
    return [(m.group(1), m.group(2)) for m in matches if m]


def test_the_changelog_keeps_an_unreleased_section_above_the_releases():
    headings = [line for line in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").splitlines()
                if line.startswith("## ")]
    assert headings[0] == "## [Unreleased]"
    assert all(RELEASE.match(h) for h in headings[1:]), headings


def test_releases_are_newest_first_with_real_dates():
    found = releases()
    assert found
    versions = [tuple(map(int, v.split("."))) for v, _ in found]
    dates = [datetime.date.fromisoformat(d) for _, d in found]
    assert versions == sorted(versions, reverse=True) and dates == sorted(dates, reverse=True)


def test_the_latest_release_is_the_package_version():
    assert releases()[0][0] == __version__


def test_the_cli_prints_the_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"fewshotkit, version {__version__}"


def test_the_citation_file_is_valid_and_names_the_release():
    yaml = pytest.importorskip("yaml", reason="PyYAML reads CITATION.cff (installed with the dev extra)")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    for key in ("cff-version", "message", "title", "authors", "version", "date-released", "license"):
        assert citation.get(key), f"CITATION.cff needs '{key}'"
    assert citation["cff-version"] == "1.2.0"
    assert all(a.get("name") or a.get("family-names") for a in citation["authors"])
    version, date = releases()[0]
    assert str(citation["version"]) == version == __version__
    assert str(citation["date-released"]) == date
    for reference in citation.get("references", []):
        assert reference.get("type") and reference.get("title") and reference.get("authors")
