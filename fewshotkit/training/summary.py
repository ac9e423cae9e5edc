"""The table printed when training finishes, and the paths the user copies from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def print_summary(console: Any, run: dict[str, Any], last: Path, curve: Path | None, loss: float) -> None:
    """The end-of-training table and the paths the user copies (plain lines, never cut)."""
    from rich.table import Table

    table = Table(title="training finished", show_header=False)
    table.add_column("what", overflow="fold")
    table.add_column("value", overflow="fold")
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
