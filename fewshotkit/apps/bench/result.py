"""What a study run returns: its tables (one per store and setting) with the cells behind them, and
the files it wrote."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshotkit.apps.bench.config import BenchConfig
from fewshotkit.apps.bench.report import bench_document, per_fold, precision_recall, write_report
from fewshotkit.apps.bench.tables import PUBLISHED_COLUMN
from fewshotkit.evaluation.protocol import FoldScores
from fewshotkit.evaluation.results import ScoreTable, write_json, write_tables


@dataclass
class BenchResult:
    """Per table (one per store and setting, named by its key): the comparison, the cells behind it,
    their timings and details; and the files written."""

    tables: dict[str, ScoreTable]
    files: list[Path]
    cells: dict[str, dict[str, dict[str, list[FoldScores]]]]  # table key -> protocol -> entry -> folds
    timings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # table key -> one entry per cell
    details: dict[str, list[ScoreTable]] = field(default_factory=dict)  # table key -> P / R, Dice per fold
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # table key -> entry -> row label
    notes: dict[str, str] = field(default_factory=dict)  # table key -> a line after its timing in results.md

    def add_table(self, key: str, table: ScoreTable, labels: dict[str, str],
                  cells: dict[str, dict[str, list[FoldScores]]], timings: list[dict[str, Any]]) -> None:
        """Add ``table`` (of ``cells``: protocol -> entry -> folds, rows ``labels``) under ``key``,
        with its details (precision / recall, Dice per fold)."""
        self.tables[key] = table
        shown = [label for label, _ in table.rows]
        folds_table = per_fold(cells, shown)
        self.details[key] = [precision_recall(cells, shown), *([folds_table] if folds_table else [])]
        self.cells[key], self.labels[key], self.timings[key] = cells, labels, timings

    def write_tables(self, cfg: BenchConfig) -> None:
        """Every table's files in ``cfg.out``: ``KEY_comparison`` as Markdown, CSV, JSON and a bar
        chart of the means."""
        from fewshotkit.evaluation.figures import bar_chart

        for key, table in self.tables.items():
            stem = Path(cfg.out) / f"{key}_comparison"
            self.files += write_tables(table, stem)
            means = [c for c in table.columns if c.endswith("mean") or c == PUBLISHED_COLUMN]  # the chart
            self.files.append(bar_chart(table.select(means), stem.with_suffix(".png")))

    def write_documents(self, cfg: BenchConfig, command: str | None) -> None:
        """``bench.json`` and ``results.md`` of every table added."""
        document = bench_document(cfg.to_json(), self.cells, self.tables, self.timings, command)
        self.files.append(write_json(Path(cfg.out) / "bench.json", document))
        self.files.append(write_report(Path(cfg.out) / "results.md", self.tables, self.timings, command,
                                       self.details, self.notes))
