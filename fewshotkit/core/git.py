"""The git commit of the fewshotkit source tree, recorded with every run."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit(mark_dirty: bool = False) -> str | None:
    """The commit of the fewshotkit source tree when it is a git checkout, else None; with
    ``mark_dirty``, ``+dirty`` is added when tracked files differ from it (results record that)."""
    root = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5,
                             check=False)
        if out.returncode != 0 or not out.stdout.strip():
            return None
        dirty = mark_dirty and subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                              capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("+dirty" if dirty else "")
