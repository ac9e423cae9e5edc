"""The run directory's files and bookkeeping: names, log trimming on resume, the git commit, and
the SIGINT/SIGTERM flag that lets training checkpoint before it stops."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np

from fewshotkit.core.atomic import write_text

RUN_JSON = "run.json"
SPEC_TOML = "spec.toml"
METRICS = "metrics.jsonl"
EPISODES = "episodes.jsonl"
LOSS_PNG = "loss.png"


def git_commit() -> str | None:
    """The commit of the fewshotkit source tree, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
            text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class StopRequest:
    """Turns the first Ctrl-C (SIGINT) or SIGTERM (e.g. a cluster pre-empting the job) into a flag
    checked between steps, so the loop can checkpoint; a second signal acts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


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


def print_summary(console: Any, run: dict[str, Any], last: Path, curve: Path | None, loss: float) -> None:
    """The end-of-training table and the paths the user copies (plain lines, never cut)."""
    from rich.table import Table

    table = Table(title="training finished", show_header=False)
    table.add_column("what")
    table.add_column("value")
    rows = [
        ("steps", f"{run['final_step']} (regime {run['regime']}, setting {run['setting']}, fold {run['fold']})"),
        ("excluded", ", ".join(run["exclude"]) or "-"),
        ("batch", f"{run['batch_size']} x {run['world_size']} process(es)"),
        ("device", f"{run['device']}" + (f", amp {run['amp']}" if run["amp"] else "")),
        ("last logged loss", f"{loss:.4f}" if np.isfinite(loss) else "-"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    # plain lines, never cut to the terminal width: the paths are what the user copies
    console.print(f"checkpoint: {last}", soft_wrap=True, highlight=False)
    if curve is not None:
        console.print(f"loss curve: {curve}", soft_wrap=True, highlight=False)
