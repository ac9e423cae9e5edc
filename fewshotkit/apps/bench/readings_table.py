"""The table of a study's readings (a row per method, a column per reading, each method's choice)
and the line that names each reading's options; :mod:`fewshotkit.apps.bench.readings` fills them."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fewshotkit.evaluation.results import ScoreTable

#: the inference part of a ``--readings chosen`` table's title (rows: ``METHOD: READING``)
CHOSEN = "as chosen on the validation scans"
#: the start of the line naming each reading's options in ``results.md``
READINGS_LINE = "Readings (inference options added):"
#: what a reading's name may not hold: the tables' cell separator and the separators of
#: ``METHOD: READING`` rows and of the readings line
NAME_BREAKERS = ("|", ": ", "; ")


@dataclass
class ReadingsTable:
    """Mean Dice (%) per method (row, by entry) and reading (column), with each method's choice."""

    title: str
    readings: list[str]
    labels: dict[str, str]  # entry -> row label
    values: dict[str, dict[str, tuple[float, float | None, int]]]  # entry -> reading -> (mean, std, folds)
    chosen: dict[str, str] = field(default_factory=dict)  # entry -> its best reading (validation split)

    def _cell(self, entry: str, reading: str) -> str:
        if reading not in self.values[entry]:
            return "-"
        mean, std, _ = self.values[entry][reading]
        text = f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"
        return f"**{text}**" if self.chosen.get(entry) == reading else text

    def _rows(self) -> list[list[str]]:
        choose = bool(self.chosen)
        return [[self.labels[entry], *(self._cell(entry, r) for r in self.readings),
                 *([self.chosen.get(entry, "-")] if choose else [])] for entry in self.labels]

    def header(self) -> list[str]:
        """The column names: ``method``, one per reading, ``chosen`` where a choice was made."""
        return ["method", *self.readings, *(["chosen"] if self.chosen else [])]

    def to_markdown(self) -> str:
        """The table in Markdown, each method's chosen reading in bold."""
        header = self.header()
        lines = ["| " + " | ".join(header) + " |",
                 "|---|" + "|".join("---:" for _ in self.readings) + ("|---|" if self.chosen else "|")]
        lines += ["| " + " | ".join(row) + " |" for row in self._rows()]
        return "\n".join(lines) + "\n"

    def to_rich(self) -> Any:
        """The table for the terminal (``rich``); long names fold, never cut."""
        from rich.table import Table

        table = Table(title=self.title)
        for i, name in enumerate(self.header()):
            table.add_column(name, justify="left" if i == 0 or name == "chosen" else "right", overflow="fold")
        for row in self._rows():
            table.add_row(*(cell.replace("**", "") for cell in row))
        return table

    def scores(self) -> ScoreTable:
        """The means as a :class:`ScoreTable` (a row per method, a column per reading), for the chart."""
        table = ScoreTable(self.title, list(self.readings))
        for entry, label in self.labels.items():
            table.add(label, {r: (m, s) for r, (m, s, _) in self.values[entry].items()})
        return table

    def to_json(self) -> dict[str, Any]:
        """Title, readings and per row its label, choice and (mean, std, folds) per reading."""
        return {"title": self.title, "readings": self.readings,
                "rows": [{"label": label, "chosen": self.chosen.get(entry),
                          "readings": {r: {"mean": m, "std": s, "folds": n}
                                       for r, (m, s, n) in self.values[entry].items()}}
                         for entry, label in self.labels.items()]}


def best_reading(values: dict[str, tuple[float, float | None, int]], readings: list[str], folds: int) -> str | None:
    """The reading of ``readings`` with the highest mean in ``values`` (reading -> (mean, std, folds
    held)), the earlier one on a tie; None unless every reading holds all ``folds``."""
    if any(values.get(r, (0.0, None, 0))[2] != folds for r in readings):
        return None
    return max(readings, key=lambda r: values[r][0])  # max keeps the first of equal keys


def reading_options(readings: Mapping[str, Sequence[str]], names: Collection[str] | None = None) -> str:
    """``Readings (inference options added): NAME: `KEY=VALUE`, ...; NAME: nothing.`` for the
    ``readings`` (name -> options) named in ``names`` (default: all), in their order."""
    parts = [f"{name}: {', '.join(f'`{o}`' for o in items) or 'nothing'}"
             for name, items in readings.items() if names is None or name in names]
    return f"{READINGS_LINE} " + "; ".join(parts) + "."
