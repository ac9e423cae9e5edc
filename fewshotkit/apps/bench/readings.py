"""Readings: a study's trained models scored under several named sets of inference options.

A bench config's ``[readings]`` table names them::

    [readings]
    "as trained" = []
    "largest component" = ["postprocess=largest-component"]
    "search" = ["support_orientation=search"]

``--readings all`` scores every reading (its options added to the study's ``--eval-set``) and
writes one table per store and setting (:class:`~fewshotkit.apps.bench.readings_table.ReadingsTable`):
a row per method, a column per reading, the mean Dice over classes (mean ± std over the folds)
under the study's first protocol. On the validation split each method's best reading is marked
and named in the ``chosen`` column. ``--readings chosen`` scores the test scans with each method's
chosen reading, read from the cells a ``--split validation --readings all`` run cached, and writes
the study's usual tables, the reading named in every row. The models are trained once and shared
by every reading; each reading's scores are cells of their own, so an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any
from pathlib import Path

from fewshotkit.apps.bench.config import BenchConfig
from fewshotkit.apps.bench.launch import run_study
from fewshotkit.apps.bench.launch_options import LaunchOptions
from fewshotkit.apps.bench.readings_table import CHOSEN, ReadingsTable, best_reading, reading_options
from fewshotkit.apps.bench.report import method_times, timing_note
from fewshotkit.apps.bench.result import BenchResult
from fewshotkit.apps.bench.study import Bench, NothingCached
from fewshotkit.apps.bench.tables import comparison_table, held_folds, table_key, table_title
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.figures import bar_chart
from fewshotkit.evaluation.fold_scores import FoldScores
from fewshotkit.evaluation.results import summarize, write_atomic, write_json

Log = Callable[[str], None]


def reading_configs(config: BenchConfig) -> dict[str, BenchConfig]:
    """The study once per reading: the reading's options added to its ``eval_overrides``."""
    if not config.readings:
        raise FewshotkitError("bench --readings: the config names no readings; add a [readings] table "
                              '(e.g. search = ["support_orientation=search"]) to the --config file')
    return {name: dataclasses.replace(config, eval_overrides=[*config.eval_overrides, *items])
            for name, items in config.readings.items()}


def _pairs(config: BenchConfig) -> list[tuple[str, int]]:
    """(store, setting) of every table of the study, in its order."""
    return [(store, setting) for store in config.stores for setting in config.setting]


def score_readings(config: BenchConfig, options: LaunchOptions, log: Log,
                   cached_only: bool = False) -> dict[str, BenchResult]:
    """Reading name -> the study's result under it (cells run, or with ``cached_only`` read, as a
    bench does; nothing written; with ``cached_only`` a reading with no cached cell is left out).
    Every reading's options are checked against every method first."""
    configs = reading_configs(config)
    for name, cfg in configs.items():
        try:
            Bench(cfg).entries()
        except FewshotkitError as exc:
            raise FewshotkitError(f"bench reading '{name}': {exc}") from None
    results = {}
    for name, cfg in configs.items():
        log(f"reading '{name}': {', '.join(config.readings[name]) or 'the study as it is'}")
        try:
            results[name] = run_study(cfg, options, log, cached_only=cached_only, report=False)
        except NothingCached:
            log(f"reading '{name}': no cell cached yet")
        except FewshotkitError as exc:
            raise FewshotkitError(f"bench reading '{name}': {exc}") from None
    if not results:
        raise NothingCached(f"bench --readings --cached: no reading has a cached cell in {config.out}; "
                            "run the same command without --cached")
    return results


def readings_tables(config: BenchConfig, results: dict[str, BenchResult]) -> dict[str, ReadingsTable]:
    """Table key -> the readings table of ``results`` (reading -> result) under the first protocol.
    On the validation split an entry whose every reading holds every fold gets its best reading."""
    protocol = config.protocol[0]
    tables = {}
    for store, setting in _pairs(config):
        key = table_key(config, store, setting)
        labels: dict[str, str] = {}
        values: dict[str, dict[str, tuple[float, float | None, int]]] = {}
        held: dict[str, dict[str, Sequence[FoldScores]]] = {}  # entry -> reading -> its folds' scores
        for reading, result in results.items():
            for entry, folds in result.cells.get(key, {}).get(protocol, {}).items():
                labels.setdefault(entry, result.labels[key][entry])
                held.setdefault(entry, {})[reading] = folds
        for entry, scored in held.items():
            # a study under way: each row over the folds its fullest reading holds, named in its label
            widest = max(scored.values(), key=len)
            if len(widest) < len(config.folds):
                labels[entry] = f"{labels[entry]} ({held_folds(widest)})"
            for reading, scores in scored.items():
                if {f.fold for f in scores} == {f.fold for f in widest}:
                    mean, std = summarize(scores, "dice")["mean"]
                    values.setdefault(entry, {})[reading] = (mean, None if len(scores) == 1 else std, len(scores))
        chosen = {}
        if config.split == "validation":
            for entry, by_reading in values.items():
                best = best_reading(by_reading, list(config.readings), len(config.folds))
                if best is not None:
                    chosen[entry] = best
        title = table_title(dataclasses.replace(config, protocol=[protocol]), store, setting)
        tables[key] = ReadingsTable(f"{title}; mean over classes, one column per reading", list(config.readings),
                                    labels, values, chosen)
    return tables


def run_all(config: BenchConfig, options: LaunchOptions, log: Log, command: str | None = None,
            cached_only: bool = False) -> tuple[dict[str, ReadingsTable], list[Path]]:
    """``--readings all``: every reading scored; each table written as ``KEY_readings.md`` and
    ``.png`` (a bar per method in each reading's group), into ``results.md`` (with the command, the
    models' training time and the readings' options) and ``readings.json``. The study's own table
    files are left as they are. Returns (table key -> table, the files written)."""
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
        note = reading_options(config.readings)
        if table.chosen:
            note += " Chosen: each method's highest mean (bold), the reading `--readings chosen` scores the test scans with."
        lines += [note, ""]
    document = {"config": config.to_json(), "readings": config.readings, "command": command,
                "tables": {key: table.to_json() for key, table in tables.items()}}
    files.append(write_json(out / "readings.json", document))
    files.append(write_atomic(out / "results.md", "\n".join(lines)))
    return tables, files


def choices(config: BenchConfig, options: LaunchOptions, log: Log) -> dict[str, dict[str, str]]:
    """Table key (of the test split) -> entry -> the reading chosen on the validation scans, from the
    cells of a ``--split validation --readings all`` run under the first protocol."""
    if config.split != "test":
        raise FewshotkitError("bench --readings chosen scores the test scans with the validation scans' choice; "
                              "leave out --split validation (or use --readings all on them)")
    if not config.val_scans:
        raise FewshotkitError("bench --readings chosen: the study holds out no validation scans to choose on; "
                              "set val_scans (e.g. 2) in the config, then run --split validation --readings all")
    held = dataclasses.replace(config, split="validation", protocol=[config.protocol[0]])
    first = (f"run `fewshotkit bench ... --split validation --protocol {config.protocol[0]} --readings all` "
             "with this study's options first")
    try:
        tables = readings_tables(held, score_readings(held, options, log, cached_only=True))
    except NothingCached:
        raise FewshotkitError(f"bench --readings chosen: no reading has a validation cell in {config.out}; "
                              f"{first}") from None
    entries = [entry for *_, entry in Bench(config).entries()]
    chosen: dict[str, dict[str, str]] = {}
    for store, setting in _pairs(config):
        table = tables[table_key(held, store, setting)]
        missing = [table.labels.get(entry, entry) for entry in entries if entry not in table.chosen]
        if missing:
            raise FewshotkitError(f"bench --readings chosen: {missing[0]} lacks validation cells of some reading or "
                                  f"fold in {config.out}; {first}")
        chosen[table_key(config, store, setting)] = table.chosen
    return chosen


def run_chosen(config: BenchConfig, options: LaunchOptions, log: Log, command: str | None = None,
               cached_only: bool = False) -> BenchResult:
    """``--readings chosen``: each method scored with the reading its validation scans chose
    (:func:`choices`); the study's usual tables and report, the reading named in every row."""
    chosen = choices(config, options, log)
    configs = reading_configs(config)
    result = BenchResult({}, [], {})
    for store, setting in _pairs(config):
        key = table_key(config, store, setting)
        _add_chosen(result, config, configs, (store, setting), chosen[key], options, log, cached_only)
    result.write_tables(config)
    result.write_documents(config, command)
    return result


def _add_chosen(result: BenchResult, config: BenchConfig, configs: dict[str, BenchConfig], table: tuple[str, int],
                picks: dict[str, str], options: LaunchOptions, log: Log, cached_only: bool) -> None:
    """Add the table of one store and setting (``table``) to ``result``: each entry of ``picks`` (entry
    -> reading) scored under its reading, in the study's row order. With ``cached_only``, rows with no
    cached test cell are left out."""
    store, setting = table
    key = table_key(config, store, setting)
    labels: dict[str, str] = {}
    cells: dict[str, dict[str, list[FoldScores]]] = {p: {} for p in config.protocol}
    timings: list[dict[str, Any]] = []
    for reading in dict.fromkeys(picks.values()):
        entries = {entry for entry, picked in picks.items() if picked == reading}
        # setting 1's table of a study with --exclusion all: the rule is setting 2's (its keys leave it out)
        one = dataclasses.replace(configs[reading], stores=[store], setting=[setting],
                                  exclusion=configs[reading].exclusion if setting == 2 else "any")
        try:
            scored = run_study(one, options, log, cached_only=cached_only, report=False, entries=entries)
        except NothingCached:
            log(f"reading '{reading}': no test cell of {key} cached yet")
            continue
        for entry, label in scored.labels[key].items():
            labels[entry] = f"{label}: {reading}"
            for protocol in config.protocol:
                cells[protocol][entry] = scored.cells[key][protocol][entry]
        timings += scored.timings[key]
    if not labels:
        raise NothingCached(f"bench --readings chosen --cached: no test cell of {key} is cached in {config.out}; "
                            "run the same command without --cached")
    order = [entry for *_, entry in Bench(config).entries() if entry in labels]
    labels = {entry: labels[entry] for entry in order}
    cells = {protocol: {entry: by_entry[entry] for entry in order} for protocol, by_entry in cells.items()}
    scores = comparison_table(config, store, setting, labels, cells)
    scores.title += f"; inference {CHOSEN}"
    result.add_table(key, scores, labels, cells, timings)
    result.notes[key] = reading_options(config.readings, set(picks.values()))


def planned(config: BenchConfig, mode: str, options: LaunchOptions, log: Log) -> dict[str, Bench]:
    """Reading name -> the bench of the cells ``--readings MODE`` would visit (for ``--plan``):
    every reading's whole study, or each chosen reading's rows."""
    configs = reading_configs(config)
    if mode == "all":
        return {name: Bench(cfg) for name, cfg in configs.items()}
    rows: dict[str, set[str]] = {}
    for table in choices(config, options, log).values():
        for entry, reading in table.items():
            rows.setdefault(reading, set()).add(entry)
    return {name: Bench(configs[name], only=entries) for name, entries in rows.items()}
