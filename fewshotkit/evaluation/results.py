"""Results files and tables: per-fold scores, mean +/- std over folds, markdown / CSV / rich.

The standard deviation over folds is the sample standard deviation (``ddof=1``); with a single
fold it is reported as 0.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from fewshotkit.core.atomic import atomic_path, write_bytes
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.core.git import git_commit
from fewshotkit.evaluation.fold_scores import FoldScores

RESULTS_FORMAT = 1
METRICS = ("dice", "precision", "recall")


# -- files -----------------------------------------------------------------------------------
def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    return write_bytes(path, data.encode() if isinstance(data, str) else data)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_atomic(path, json.dumps(data, indent=2, allow_nan=True) + "\n")


def save_nifti_atomic(image: Any, path: str | os.PathLike) -> Path:
    """Save a nibabel image atomically (the temporary name keeps the .nii.gz suffix nibabel needs)."""
    import nibabel as nib

    path = Path(path)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    with atomic_path(path, suffix=suffix) as tmp:
        nib.save(image, tmp)
    return path


# -- aggregation -----------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation, ignoring NaN; (nan, nan) when empty."""
    arr = np.asarray([v for v in values if not np.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def summarize(folds: Sequence[FoldScores], metric: str = "dice") -> dict[str, tuple[float, float]]:
    """Class -> (mean, std) over folds of the per-fold class score, plus ``"mean"``."""
    if not folds:
        raise FewshotkitError("no folds to summarize: evaluate at least one fold")
    classes = folds[0].classes
    out = {name: mean_std([f.per_class(metric)[name] for f in folds]) for name in classes}
    out["mean"] = mean_std([f.mean(metric) for f in folds])
    return out


def results_document(folds: Sequence[FoldScores], *, protocol: dict[str, Any], **context: Any) -> dict[str, Any]:
    """The results file: context (spec, plugin versions, commit, seed, device...) + folds + summary."""
    if not folds:
        raise FewshotkitError("no folds to write a results file of: evaluate at least one fold")
    return {
        "format": RESULTS_FORMAT,
        **context,
        "git_commit": context.get("git_commit", git_commit(mark_dirty=True)),
        "protocol": protocol,
        "classes": list(folds[0].classes),
        "folds": [f.to_json() for f in folds],
        "summary": {m: {k: {"mean": v[0], "std": v[1]} for k, v in summarize(folds, m).items()} for m in METRICS},
    }


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """A results file written by :func:`results_document` (``fewshotkit eval -o``), its folds checked."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FewshotkitError(f"cannot read results file '{path}': {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("folds"), list):
        raise FewshotkitError(f"'{path}' is not a fewshotkit results file (no list of 'folds'); give the JSON "
                              "that `fewshotkit eval -o` writes")
    try:
        folds_of(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FewshotkitError(f"results file '{path}' has a damaged fold ({type(exc).__name__}: {exc}); "
                              "write it again with `fewshotkit eval -o`") from None
    return data


def folds_of(document: dict[str, Any]) -> list[FoldScores]:
    """The per-fold scores of a results document."""
    return [FoldScores.from_json(f) for f in document["folds"]]


# -- tables ----------------------------------------------------------------------------------
@dataclass
class ScoreTable:
    """Rows of (label, per-column (mean, std or None)); columns are classes then ``mean``."""

    title: str
    columns: list[str]
    rows: list[tuple[str, list[tuple[float, float | None]]]] = field(default_factory=list)
    row_header: str = "method"

    def add(self, label: str, values: Mapping[str, tuple[float, float | None]]) -> None:
        self.rows.append((label, [values.get(c, (float("nan"), None)) for c in self.columns]))

    def select(self, columns: Sequence[str]) -> "ScoreTable":
        """The same rows restricted to ``columns`` (in that order)."""
        index = [self.columns.index(c) for c in columns]
        return ScoreTable(self.title, list(columns), [(label, [values[i] for i in index]) for label, values in self.rows],
                          self.row_header)

    @staticmethod
    def _cell(value: tuple[float, float | None], digits: int) -> str:
        mean, std = value
        if np.isnan(mean):
            return "-"
        return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"

    def to_markdown(self, digits: int = 2) -> str:
        header = [self.row_header, *self.columns]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(self.columns)) + "|"]
        for label, values in self.rows:
            lines.append("| " + " | ".join([label, *(self._cell(v, digits) for v in values)]) + " |")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = [self.row_header]
        for c in self.columns:
            header += [c, f"{c}_std"]
        writer.writerow(header)
        for label, values in self.rows:
            row: list[Any] = [label]
            for mean, std in values:
                row += ["" if np.isnan(mean) else f"{mean:.4f}", "" if std is None or np.isnan(std) else f"{std:.4f}"]
            writer.writerow(row)
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": self.columns,
            "rows": [
                {"label": label, **{c: {"mean": m, "std": s} for c, (m, s) in zip(self.columns, values)}}
                for label, values in self.rows
            ],
        }

    def to_rich(self, digits: int = 2):
        from rich.table import Table

        table = Table(title=self.title)
        table.add_column(self.row_header, overflow="fold")
        for c in self.columns:
            table.add_column(c, justify="right", style="bold" if c == "mean" else None, overflow="fold")
        for label, values in self.rows:
            table.add_row(label, *(self._cell(v, digits) for v in values))
        return table


def fold_table(folds: Sequence[FoldScores], metric: str = "dice", title: str | None = None) -> ScoreTable:
    """One row per fold plus ``mean ± std`` over folds (percent)."""
    if not folds:
        raise FewshotkitError("no folds to tabulate: evaluate at least one fold")
    columns = [*folds[0].classes, "mean"]
    table = ScoreTable(title or f"{metric.capitalize()} (%)", columns, row_header="fold")
    for f in folds:
        per = f.per_class(metric)
        table.add(f"fold {f.fold}", {**{c: (v, None) for c, v in per.items()}, "mean": (f.mean(metric), None)})
    if len(folds) > 1:
        table.add("mean ± std", summarize(folds, metric))
    return table


def write_tables(table: ScoreTable, stem: str | os.PathLike) -> list[Path]:
    """``stem.md``, ``stem.csv`` and ``stem.json`` (atomically)."""
    stem = Path(stem)
    return [
        write_atomic(stem.with_suffix(".md"), f"### {table.title}\n\n" + table.to_markdown()),
        write_atomic(stem.with_suffix(".csv"), table.to_csv()),
        write_json(stem.with_suffix(".json"), table.to_json()),
    ]
