"""Figures with matplotlib's Agg backend: Fig. 4-style overlays, montages and bar charts."""

from __future__ import annotations

import io
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fewshotkit.evaluation.results import ScoreTable, write_atomic

TRUTH_COLOUR = (0.1, 0.9, 0.2)
PREDICTION_COLOUR = (1.0, 0.25, 0.1)


@dataclass
class OverlayRow:
    """One row of an overlay figure: a slice (H, W), its ground truth and prediction (H, W) bool."""

    title: str
    image: np.ndarray
    truth: np.ndarray | None
    prediction: np.ndarray


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return write_atomic(path, buffer.getvalue())


def _show(ax, image: np.ndarray, mask: np.ndarray | None, colour: tuple[float, float, float]) -> None:
    lo, hi = np.percentile(image, [0.5, 99.5])
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
    if mask is not None:
        _overlay(ax, mask, colour)
    ax.set_axis_off()


def _overlay(ax, mask: np.ndarray, colour: tuple[float, ...]) -> None:
    if mask.any():
        rgba = np.zeros((*mask.shape, 4), dtype=np.float32)
        rgba[mask.astype(bool)] = (*colour[:3], 0.45)
        ax.imshow(rgba, interpolation="nearest")
        ax.contour(mask.astype(float), levels=[0.5], colors=[colour[:3]], linewidths=0.8)


def overlay_figure(rows: Sequence[OverlayRow], path: str | os.PathLike, title: str | None = None) -> Path:
    """Columns image | ground truth | prediction (like the paper's Fig. 4), one row per entry."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.6 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        _show(axes[r, 0], row.image, None, TRUTH_COLOUR)
        _show(axes[r, 1], row.image, row.truth, TRUTH_COLOUR)
        _show(axes[r, 2], row.image, row.prediction, PREDICTION_COLOUR)
        axes[r, 0].set_title(row.title, fontsize=8, loc="left")
        if r == 0:
            axes[r, 1].set_title("ground truth", fontsize=9)
            axes[r, 2].set_title("prediction", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def montage(
    image: np.ndarray,
    prediction: np.ndarray,
    path: str | os.PathLike,
    truth: np.ndarray | None = None,
    max_slices: int = 12,
    title: str | None = None,
    class_names: dict[int, str] | None = None,
) -> Path:
    """A grid of axial slices (Z, H, W) with the prediction (and truth as contour) overlaid.

    ``prediction`` is a mask or a label map; with ``class_names`` (value -> name) each class gets
    its own colour and a legend. Shows up to ``max_slices`` slices evenly spaced over the z-range
    where prediction or truth is non-empty (the whole volume when both are empty).
    """
    plt = _pyplot()
    colours = {v: PREDICTION_COLOUR if i == 0 else plt.get_cmap("tab10")(i % 10)
               for i, v in enumerate(sorted(class_names or {}))}
    present = prediction.any(axis=(1, 2)) | (truth.any(axis=(1, 2)) if truth is not None else False)
    zs = np.flatnonzero(present)
    lo, hi = (int(zs[0]), int(zs[-1])) if zs.size else (0, image.shape[0] - 1)
    chosen = np.unique(np.linspace(lo, hi, num=min(max_slices, hi - lo + 1)).round().astype(int))
    cols = min(4, len(chosen))
    nrows = int(np.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(2.4 * cols, 2.4 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, z in zip(axes.flat, chosen):
        _show(ax, image[z], None if colours else prediction[z] > 0, PREDICTION_COLOUR)
        for value, colour in colours.items():
            _overlay(ax, prediction[z] == value, colour)
        if truth is not None and truth[z].any():
            ax.contour(truth[z].astype(float), levels=[0.5], colors=[TRUTH_COLOUR], linewidths=0.8)
        ax.set_title(f"z = {z}", fontsize=8)
    if colours:
        from matplotlib.patches import Patch

        fig.legend(handles=[Patch(color=colours[v][:3], label=class_names[v]) for v in colours],  # type: ignore[index]
                   loc="lower center", ncol=min(len(colours), 4), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def bar_chart(table: ScoreTable, path: str | os.PathLike, ylabel: str = "Dice (%)") -> Path:
    """Grouped bars: one group per column (classes, mean), one bar per row (method), std as error bars."""
    plt = _pyplot()
    n_rows, n_cols = len(table.rows), len(table.columns)
    width = 0.8 / max(n_rows, 1)
    x = np.arange(n_cols)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * n_cols + 0.4 * n_rows), 3.6))
    for i, (label, values) in enumerate(table.rows):
        means = np.array([m for m, _ in values], dtype=float)
        stds = np.array([0.0 if s is None or np.isnan(s) else s for _, s in values], dtype=float)
        ax.bar(x + (i - (n_rows - 1) / 2) * width, np.nan_to_num(means), width, yerr=stds, capsize=2, label=label)
    ax.set_xticks(x, [textwrap.fill(c, 16) for c in table.columns], fontsize=8)  # long names wrap, never cut
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.set_title(textwrap.fill(table.title, 90), fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the axes: clear of wrapped names
    return _save(fig, path)
