"""The loss-curve PNG of a run, drawn from its metrics log (matplotlib, Agg backend)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

from fewshotkit.core.atomic import write_bytes


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl file (a torn last line from a crash is skipped)."""
    records: list[dict] = []
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_loss_curve(metrics_path: Path, out_path: Path, title: str = "") -> Path | None:
    """Plot loss (and each named term) against step to ``out_path``; None when nothing was logged."""
    records = [r for r in read_metrics(metrics_path) if "loss" in r]
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    steps = [r["step"] for r in records]
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(steps, [r["loss"] for r in records], label="loss", color="black", linewidth=1.5)
    terms = sorted({k[5:] for r in records for k in r if k.startswith("loss_")})
    for term in terms:
        ax.plot(steps, [r.get(f"loss_{term}", float("nan")) for r in records], label=term, linewidth=1, alpha=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (mean over the logging interval)")
    ax.set_title(title or "training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_bytes(out_path, buffer.getvalue())
    return out_path


def plot_dice_curves(series: Sequence[tuple[str, list[dict]]], out_path: Path,
                     protocols: Sequence[str] = ("roy", "full-volume"), title: str = "",
                     clock: str = "wall") -> Path | None:
    """Mean Dice against training minutes (left) and steps (right), one colour per run.

    ``series``: (label, records of a curve.jsonl) per run; protocol ``roy`` is drawn solid, the
    others dashed/dotted. ``clock``: ``wall`` (wall-clock minutes in training steps) or ``cpu``
    (CPU minutes of the training process, unaffected by other processes on a shared machine).
    None when no run has a record.
    """
    time_key = {"wall": "train_min", "cpu": "train_cpu_min"}[clock]
    series = [(label, [r for r in records if "step" in r]) for label, records in series]
    series = [(label, records) for label, records in series if records]
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    styles = ["-", "--", ":", "-."]
    monitored = sorted({name for _, records in series for r in records for name in r.get("monitored", {})})
    fig = Figure(figsize=(16 if monitored else 11, 4.2), dpi=100)
    axes = fig.subplots(1, 3 if monitored else 2)
    axes[1].sharey(axes[0])
    for index, (label, records) in enumerate(series):
        colour = f"C{index}"
        for p, protocol in enumerate(protocols):
            points = [r for r in records if protocol in r]
            if not points:
                continue
            name = f"{label} ({protocol})" if label else protocol
            dice = [r[protocol]["dice"] for r in points]
            axes[0].plot([r.get(time_key, float("nan")) for r in points], dice, styles[p % 4], color=colour, marker=".", label=name)
            axes[1].plot([r["step"] for r in points], dice, styles[p % 4], color=colour, marker=".")
    time_label = f"training time ({'CPU ' if clock == 'cpu' else ''}min, evaluation excluded)"
    if monitored:
        _plot_monitored(axes[2], series, monitored, time_key, time_label)
    axes[0].set_xlabel(time_label)
    axes[1].set_xlabel("step")
    axes[0].set_ylabel("mean Dice (%)")
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
    fig.suptitle(title or "Dice on the held-out fold during training")
    _legend_below(fig, axes[0], columns=min(len(series), 5))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_bytes(out_path, buffer.getvalue())
    return out_path


def _legend_below(fig: Any, ax: Any, columns: int) -> None:
    """``ax``'s legend under the panels, a column per run where there are at most ``columns`` runs
    (inside a panel it would hide the curves of some run), the figure grown to hold it."""
    handles, labels = ax.get_legend_handles_labels()
    rows = -(-len(labels) // columns)
    width, height = fig.get_size_inches()
    below = 0.2 * rows + 0.15
    fig.set_size_inches(width, height + below)
    fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, below / (height + below), 1, 1))


def _plot_monitored(ax: Any, series: Sequence[tuple[str, list[dict]]], names: list[str], time_key: str,
                    time_label: str) -> None:
    """Monitored scalars (e.g. a learned threshold T) against the Dice panel's clock (``time_key``,
    axis title ``time_label``), one colour per run."""
    styles = ["-", "--", ":", "-."]
    for index, (label, records) in enumerate(series):
        for n, name in enumerate(names):
            points = [r for r in records if name in r.get("monitored", {})]
            if points:
                ax.plot([r.get(time_key, float("nan")) for r in points], [r["monitored"][name] for r in points],
                        styles[n % 4], color=f"C{index}", marker=".", label=f"{label} {name}".strip())
    ax.set_xlabel(time_label)
    ax.set_ylabel(", ".join(names))
    ax.set_title("monitored during training", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
