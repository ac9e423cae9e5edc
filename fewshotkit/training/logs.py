"""A run's JSON-lines logs on resume: lines written after the checkpoint a run resumes from go."""

from __future__ import annotations

import json
from pathlib import Path

from fewshotkit.core.atomic import write_text


def trim_log(path: Path, step: int) -> None:
    """Drop log lines written after ``step`` (a crashed run may have logged past its checkpoint)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue
    write_text(path, "".join(f"{line}\n" for line in kept))
