"""A bench cell's file: read it when it was written for the same settings, write it without
overwriting another settings' cell, and merge the scores of a cell's class-group models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fewshotkit.apps.bench.cells import CellSite
from fewshotkit.evaluation.protocol import FoldScores
from fewshotkit.evaluation.results import write_json


def read_cell(path: Path, digest: str, log: Callable[[str], None]) -> tuple[FoldScores, dict[str, Any]] | None:
    """(scores, timing) of the cell file ``path`` when it was written for ``digest``; None when it is
    missing, for other settings, or unreadable (a damaged cell is computed again and replaced)."""
    if not path.is_file():
        return None
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(cached, dict) or cached.get("key") != digest:
            return None
        return FoldScores.from_json(cached["scores"]), dict(cached.get("timing") or {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log(f"the saved cell {path} is unreadable ({type(exc).__name__}); computing it again")
        return None


def holds_other_key(path: Path, digest: str) -> bool:
    """Whether the cell file ``path`` holds a readable cell of other settings than ``digest``."""
    try:
        key = json.loads(path.read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(key, str) and key != digest


def merge_groups(parts: list[FoldScores], class_order: list[str], groups: list[str]) -> FoldScores:
    """One fold's scores from those of its class groups' models (setting 2: one model per group)."""
    first = parts[0]
    merged = FoldScores(first.fold, first.support, first.queries, [])
    for group, p in zip(groups, parts):
        merged.counts.update(p.counts)
        merged.support_slices.update(p.support_slices)
        # each group's model searched the support's turn for itself: "scan (group)" keeps every one
        merged.support_turns.update({scan if len(parts) == 1 else f"{scan} ({group})": k
                                     for scan, k in p.support_turns.items()})
        merged.skipped += p.skipped
    merged.classes = [c for c in class_order if any(c in p.classes for p in parts)]
    return merged


def write_cell(site: CellSite, scores: FoldScores, timing: dict[str, Any]) -> Path:
    """Write the cell ``site`` (atomically) to its file, or to its keyed file when its own file holds
    a cell of other settings (kept, not overwritten); returns the path written."""
    path = site.keyed if holds_other_key(site.path, site.digest) else site.path
    write_json(path, {"key": site.digest, "settings": site.key, "scores": scores.to_json(), "timing": timing})
    return path
