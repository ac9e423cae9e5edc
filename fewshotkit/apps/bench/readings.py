"""Readings: a study's trained models scored under several named sets of inference options.

A bench config's ``[readings]`` table names them::

    [readings]
    "as trained" = []
    "largest component" = ["postprocess=largest-component"]
    "search" = ["support_orientation=search"]

``--readings all`` scores every reading (its options added to the study's ``--eval-set``) and
writes one table per store and setting: a row per method, a column per reading, the mean Dice over
classes (mean ± std over the folds) under the study's first protocol. On the validation split each
method's best reading is marked and named in the ``chosen`` column. ``--readings chosen`` scores
each method with the reading its validation scans chose (read from the cells a ``--split
validation --readings all`` run cached) and writes the study's usual tables, the reading named in
every row. The models are trained once and shared by every reading; each reading's scores are
cells of their own, so an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshotkit.apps.bench.config import BenchConfig
from fewshotkit.apps.bench.launch import run_study
from fewshotkit.apps.bench.report import method_times, timing_note
from fewshotkit.apps.bench.result import BenchResult
from fewshotkit.apps.bench.study import Bench
from fewshotkit.apps.bench.tables import comparison_table, table_key, table_title
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.figures import bar_chart
from fewshotkit.evaluation.results import ScoreTable, summarize, write_atomic, write_json

#: the inference part of a ``--readings chosen`` table's title (rows: ``METHOD: READING``)
CHOSEN = "as chosen on the validation scans"
#: the start of the line naming each reading's options in ``results.md``
READINGS_LINE = "Readings (inference options added):"


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
        return ["method", *self.readings, *(["chosen"] if self.chosen else [])]

    def to_markdown(self) -> str:
        header = self.header()
        lines = ["| " + " | ".join(header) + " |",
                 "|---|" + "|".join("---:" for _ in self.readings) + ("|---|" if self.chosen else "|")]
        lines += ["| " + " | ".join(row) + " |" for row in self._rows()]
        return "\n".join(lines) + "\n"

    def to_rich(self) -> Any:
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
        return {"title": self.title, "readings": self.readings,
                "rows": [{"label": label, "chosen": self.chosen.get(entry),
                          **{r: {"mean": m, "std": s, "folds": n} for r, (m, s, n) in self.values[entry].items()}}
                         for entry, label in self.labels.items()]}


def reading_configs(config: BenchConfig) -> dict[str, BenchConfig]:
    """The study once per reading: the reading's options added to its ``eval_overrides``."""
    if not config.readings:
        raise FewshotkitError("bench --readings: the config names no readings; add a [readings] table "
                              '(e.g. search = ["support_orientation=search"]) to the --config file')
    return {name: dataclasses.replace(config, eval_overrides=[*config.eval_overrides, *items])
            for name, items in config.readings.items()}


def _check_entries(configs: dict[str, BenchConfig]) -> None:
    """Every reading's options checked against every method before anything trains."""
    for name, cfg in configs.items():
        try:
            Bench(cfg).entries()
        except FewshotkitError as exc:
            raise FewshotkitError(f"bench reading '{name}': {exc}") from None


def score_readings(config: BenchConfig, options: Any, log: Callable[[str], None],
                   cached_only: bool = False) -> dict[str, BenchResult]:
    """Reading name -> the study's result under it (cells run, or with ``cached_only`` read, as a
    bench does; no report written)."""
    configs = reading_configs(config)
    _check_entries(configs)
    results = {}
    for name, cfg in configs.items():
        log(f"reading '{name}': {', '.join(config.readings[name]) or 'the study as it is'}")
        try:
            results[name] = run_study(cfg, options, log, cached_only=cached_only, report=False)
        except FewshotkitError as exc:
            raise FewshotkitError(f"bench reading '{name}': {exc}") from None
    return results


def best_reading(values: dict[str, tuple[float, float | None, int]], readings: list[str], folds: int) -> str | None:
    """The reading of ``readings`` with the highest mean in ``values`` (reading -> (mean, std, folds
    held)), the earlier one on a tie; None unless every reading holds all ``folds``."""
    if any(values.get(r, (0.0, None, 0))[2] != folds for r in readings):
        return None
    return max(readings, key=lambda r: values[r][0])  # max keeps the first of equal keys


def readings_tables(config: BenchConfig, results: dict[str, BenchResult]) -> dict[str, ReadingsTable]:
    """Table key -> the readings table of ``results`` (reading -> result) under the first protocol.
    On the validation split an entry whose every reading holds every fold gets its best reading
    (the highest mean; the earlier reading on a tie) as its choice."""
    protocol = config.protocol[0]
    tables = {}
    for store, setting in [(store, setting) for store in config.stores for setting in config.setting]:
        key = table_key(config, store, setting)
        labels: dict[str, str] = {}
        values: dict[str, dict[str, tuple[float, float | None, int]]] = {}
        for reading, result in results.items():
            for entry, folds in result.cells.get(key, {}).get(protocol, {}).items():
                labels.setdefault(entry, result.labels[key][entry])
                mean, std = summarize(folds, "dice")["mean"]
                values.setdefault(entry, {})[reading] = (mean, None if len(folds) == 1 else std, len(folds))
        chosen = {}
        if config.split == "validation":
            for entry, by_reading in values.items():
                best = best_reading(by_reading, list(results), len(config.folds))
                if best is not None:
                    chosen[entry] = best
        title = table_title(dataclasses.replace(config, protocol=[protocol]), store, setting)
        tables[key] = ReadingsTable(f"{title}; mean over classes, one column per reading", list(results),
                                    labels, values, chosen)
    return tables


def run_all(config: BenchConfig, options: Any, log: Callable[[str], None], command: str | None = None,
            cached_only: bool = False) -> tuple[dict[str, ReadingsTable], list[Path]]:
    """``--readings all``: every reading scored; each table written as ``KEY_readings.md`` and
    ``.png`` (a bar per method in each reading's group), into ``results.md`` (with the command, the
    models' training time and the readings' options) and ``readings.json``. Returns (table key ->
    table, the files written)."""
    results = score_readings(config, options, log, cached_only)
    tables = readings_tables(config, results)
    out = Path(config.out)
    files = []
    lines = ["```console", f"$ {command}", "```", ""] if command else []
    for key, table in tables.items():
        files.append(write_atomic(out / f"{key}_readings.md", f"### {table.title}\n\n{table.to_markdown()}"))
        files.append(bar_chart(table.scores(), out / f"{key}_readings.png"))
        cells = [cell for result in results.values() for cell in result.timings.get(key, [])]  # models counted once
        per_method = method_times(cells)
        lines += [f"#### {table.title}", "", table.to_markdown().rstrip(), "", timing_note(cells), ""]
        lines += [per_method, ""] if per_method else []
        lines += [_readings_note(config, table), ""]
    document = {"config": config.to_json(), "readings": config.readings, "command": command,
                "tables": {key: table.to_json() for key, table in tables.items()}}
    files.append(write_json(out / "readings.json", document))
    files.append(write_atomic(out / "results.md", "\n".join(lines)))
    return tables, files


def reading_options(config: BenchConfig, names: Collection[str] | None = None) -> str:
    """``Readings (inference options added): NAME: `KEY=VALUE`, ...; NAME: nothing.`` for the
    readings ``names`` (default: all), in the config's order."""
    parts = [f"{name}: {', '.join(f'`{o}`' for o in items) or 'nothing'}"
             for name, items in config.readings.items() if names is None or name in names]
    return f"{READINGS_LINE} " + "; ".join(parts) + "."


def _readings_note(config: BenchConfig, table: ReadingsTable) -> str:
    """What each reading adds to the study's inference options, and how the choice is made."""
    note = reading_options(config)
    if table.chosen:
        note += " Chosen: each method's highest mean (bold), the reading `--readings chosen` scores the test scans with."
    return note


def choices(config: BenchConfig, options: Any, log: Callable[[str], None]) -> dict[str, dict[str, str]]:
    """Table key (of the test split) -> entry -> the reading chosen on the validation scans, from the
    cells of a ``--split validation --readings all`` run under the first protocol."""
    held = dataclasses.replace(config, split="validation", protocol=[config.protocol[0]])
    first = (f"; run `fewshotkit bench ... --split validation --protocol {config.protocol[0]} --readings all` with "
             "this study's options first")
    try:
        tables = readings_tables(held, score_readings(held, options, log, cached_only=True))
    except FewshotkitError as exc:
        raise FewshotkitError(f"bench --readings chosen: the choice needs every reading's validation cells "
                              f"({exc}){first}") from None
    chosen: dict[str, dict[str, str]] = {}
    for store in config.stores:
        for setting in config.setting:
            table = tables[table_key(held, store, setting)]
            missing = [table.labels[e] for e in table.labels if e not in table.chosen]
            entries = {entry for *_, entry in Bench(config).entries()}
            if missing or set(table.chosen) != entries:
                shown = missing[0] if missing else "a method of the study"
                raise FewshotkitError(f"bench --readings chosen: {shown} lacks validation cells of some reading or "
                                      f"fold in {config.out}{first}")
            chosen[table_key(config, store, setting)] = table.chosen
    return chosen


def run_chosen(config: BenchConfig, options: Any, log: Callable[[str], None], command: str | None = None,
               cached_only: bool = False) -> BenchResult:
    """``--readings chosen``: each method scored with the reading its validation scans chose
    (:func:`choices`); the study's usual tables and report, the reading named in every row."""
    if config.split != "test":
        raise FewshotkitError("bench --readings chosen scores the test scans with the validation scans' choice; "
                              "leave out --split validation (or use --readings all on them)")
    chosen = choices(config, options, log)
    configs = reading_configs(config)
    by_reading: dict[str, set[str]] = {}
    for picked in chosen.values():
        for entry, reading in picked.items():
            by_reading.setdefault(reading, set()).add(entry)
    results = {}
    for reading, entries in by_reading.items():
        log(f"reading '{reading}' for {len(entries)} of the rows")
        results[reading] = run_study(configs[reading], options, log, cached_only=cached_only, report=False,
                                     entries=entries)
    combined = BenchResult({}, [], {})
    for store in config.stores:
        for setting in config.setting:
            key = table_key(config, store, setting)
            picks = {entry: (reading, results[reading]) for entry, reading in chosen[key].items()}
            labels = {entry: f"{result.labels[key][entry]}: {reading}" for entry, (reading, result) in picks.items()}
            cells = {p: {entry: result.cells[key][p][entry] for entry, (_, result) in picks.items()}
                     for p in config.protocol}
            shown = {result.labels[key][entry] for entry, (_, result) in picks.items()}
            timings = [t for result in results.values() for t in result.timings.get(key, []) if t["method"] in shown]
            table = comparison_table(config, store, setting, labels, cells)
            table.title += f"; inference {CHOSEN}"
            combined.add_table(config, key, table, labels, cells, timings)
            combined.notes[key] = reading_options(config, {reading for reading, _ in picks.values()})
    combined.write_documents(config, command)
    return combined
