"""A run directory's files (only rank 0 writes them)::

    RUN_DIR/spec.toml               the resolved spec (training values as used)
    RUN_DIR/run.json                store, fold, setting, exclude, regime, seed, device, versions ...
    RUN_DIR/checkpoints/last.pt     newest checkpoint; step_NNNNNN.pt every checkpoint_every steps
    RUN_DIR/metrics.jsonl           one line per log_every steps: loss terms, lr, timings
    RUN_DIR/episodes.jsonl          with training.log_episodes: every episode's (volume, z, ...)
    RUN_DIR/loss.png                the loss curve, drawn at the end
    RUN_DIR/curve.jsonl, curve.png  with training.eval_every: Dice on the held-out fold vs training time
    RUN_DIR/run.lock                held while a training or --resume runs (:func:`run_lock`)
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from fewshotkit.core.atomic import write_text
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.core.lock import exclusive_lock
from fewshotkit.method.checkpoint import LAST

RUN_JSON = "run.json"
SPEC_TOML = "spec.toml"
METRICS = "metrics.jsonl"
EPISODES = "episodes.jsonl"
LOSS_PNG = "loss.png"
RUN_LOCK = "run.lock"


@contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock (``RUN_DIR/run.lock``) while training, creating the directory
    if needed; a directory this call created is removed again when the block fails before a
    checkpoint was written.

    Only the main process locks: under torchrun (``RANK`` set) the other ranks write nothing. A
    second training, or ``--resume``, of a directory being trained fails at once with one line
    naming the process that trains it; the lock of a killed run is free (:mod:`fewshotkit.core.lock`).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise FewshotkitError(f"--out '{out_dir}' is a file, not a folder; give a run directory")
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)

    def busy(holder: str) -> str:
        return (f"run directory '{out_dir}' is being trained by another process ({holder}); wait for it to "
                "finish (then continue it with --resume) or choose another --out")

    with exclusive_lock(out_dir / RUN_LOCK, busy):
        try:
            yield
        except Exception:
            if created and not RunDir(out_dir).last_checkpoint.exists():
                shutil.rmtree(out_dir, ignore_errors=True)  # no half-made run folder when nothing was trained
            raise


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST

    def __truediv__(self, name: str) -> Path:
        """``run_dir / METRICS``: a file of the run."""
        return self.root / name


class RunRecord:
    """run.json: ``fields`` as the run goes (status, final step ...), written by rank 0 only."""

    def __init__(self, path: Path, fields: dict[str, Any], write: bool) -> None:
        self.path = path
        self.fields = fields
        self.write_files = write

    def write(self, **updates: Any) -> None:
        self.fields.update(updates)
        if self.write_files:
            write_text(self.path, json.dumps(self.fields, indent=2) + "\n")
