"""The repository speaks of the product only: no words about how it was made, no local paths.

Every tracked text file is read (code, comments, docs, configs, tests, study configs); a match names
the file, the line and the pattern, so the fix is one edit away.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()

# How the code was made is no part of the product: work logs, tickets, reviews, scratch code, machines.
PROCESS_WORDS = [
    r"(?<![\"'])\bsessions?\b(?![\"'])",  # pytest's scope="session" is code, not a work log
    r"\bsessions?[ ][0-9]",  # character classes: this file holds no phrase it forbids
    r"\bsession-[0-9]",
    r"\bfirst[ ]session\b",
    r"\b(earlier|later|previous|next|this) session\b",
    r"\bissues?[ ][0-9]+",
    r"\bthe issue('s)?\b",
    r"\bthrow[a]way\b",
    r"\bdevelopment[ ]machine\b",
    r"\breview(s|ed|ers?)?\b",
    r"\bthe lead\b",
    r"\bWhy ~[0-9]+ lines\b",
    r"\bnot built yet\b",
]
# An absolute path on one machine is wrong on every other one.
LOCAL_PATHS = [
    r"(^|[\s\"'`(=\[])/(work|tmp|home|Users|root|mnt|scratch)/[A-Za-z0-9_.-]",
    r"\b[A-Za-z]:\\(Users|Documents and Settings)\\",
]
BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".h5", ".hdf5", ".nii", ".gz", ".pt", ".npz", ".npy",
                   ".zip", ".ico", ".pdf", ".whl"}


def tracked_text_files() -> list[Path]:
    """Files git tracks in this checkout, without binary formats and without this test."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    names = [n for n in listing.decode().split("\0") if n and n != THIS_FILE]
    return [ROOT / n for n in names if Path(n).suffix.lower() not in BINARY_SUFFIXES and (ROOT / n).is_file()]


def findings(patterns: list[str]) -> list[str]:
    """``file:line: pattern`` for every line of a tracked text file matching one of ``patterns``."""
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    found = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for pattern in compiled:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {pattern.pattern}")
    return found


def test_no_words_about_how_the_code_was_made():
    assert findings(PROCESS_WORDS) == []


def test_no_absolute_local_paths():
    assert findings(LOCAL_PATHS) == []


@pytest.mark.parametrize("line, patterns", [
    ("as measured in session " + "13", PROCESS_WORDS),
    ("fixed for issue " + "10", PROCESS_WORDS),
    ("a throw" + "away script", PROCESS_WORDS),
    ("measured in an earlier " + "sess" + "ion", PROCESS_WORDS),
    ("after the review", PROCESS_WORDS),
    ("run = '/tmp/gcwork/run'", LOCAL_PATHS),
    ("see /work/shared/notes", LOCAL_PATHS),
])
def test_the_patterns_catch_what_they_are_for(line, patterns):
    assert any(re.search(p, line, re.IGNORECASE) for p in patterns)


@pytest.mark.parametrize("line", ['@pytest.fixture(scope="session")', 'if "/data/" in name', "docs/results.md"])
def test_the_patterns_leave_the_product_alone(line):
    assert not any(re.search(p, line, re.IGNORECASE) for p in PROCESS_WORDS + LOCAL_PATHS)
