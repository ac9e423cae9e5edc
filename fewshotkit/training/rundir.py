"""A run directory's files (only rank 0 writes them)::

    RUN_DIR/spec.toml               the resolved spec (training values as used)
    RUN_DIR/run.json                store, fold, setting, exclude, regime, seed, device, versions ...
    RUN_DIR/checkpoints/last.pt     newest checkpoint; step_NNNNNN.pt every checkpoint_every steps
    RUN_DIR/metrics.jsonl           one line per log_every steps: loss terms, lr, timings
    RUN_DIR/episodes.jsonl          with training.log_episodes: every episode's (volume, z, ...)
    RUN_DIR/loss.png                the loss curve, drawn at the end
    RUN_DIR/curve.jsonl, curve.png  with training.eval_every: Dice on the held-out fold vs training time
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshotkit.core.atomic import write_text
from fewshotkit.method.checkpoint import LAST

RUN_JSON = "run.json"
SPEC_TOML = "spec.toml"
METRICS = "metrics.jsonl"
EPISODES = "episodes.jsonl"
LOSS_PNG = "loss.png"


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
