"""What a ``fewshotkit bench`` run writes besides its tables: per-model training time read from the
run folders, ``bench.json`` (every score, summary and timing) and ``results.md`` (every table with
its budget, time and command), the file the results sections of the README and docs/results.md are generated from
(``benchmarks/studies/to_readme.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from fewshotkit.evaluation.fold_scores import FoldScores
from fewshotkit.evaluation.results import ScoreTable, summarize, write_atomic


def model_timing(run_dir: Path, steps: int) -> dict[str, Any]:
    """Training time of one trained (or untrained) model from its ``run.json``."""
    try:
        run = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {"steps": steps, "train_seconds": None, "train_cpu_seconds": None, "amp": None}
    timing = {"steps": int(run.get("final_step", steps)), "train_seconds": run.get("train_seconds"),
              "train_cpu_seconds": run.get("train_cpu_seconds"), "amp": run.get("amp")}
    hardware = run.get("device_name") if str(run.get("device_name", "cpu")).startswith("cuda") else run.get("cpu")
    if hardware:  # runs written before the CPU was recorded name none
        timing["hardware"] = f"{hardware}, {run.get('threads', '?')} thread{'' if run.get('threads') == 1 else 's'}"
    return timing


def _minutes(seconds: Sequence[float]) -> str:
    if not seconds:
        return "-"
    mean = sum(seconds) / len(seconds) / 60
    return f"{mean:.1f} min" if len(seconds) == 1 else \
        f"{mean:.1f} min (range {min(seconds) / 60:.1f}-{max(seconds) / 60:.1f})"


def _unique_models(cells: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, int, int], Mapping[str, Any]]:
    """(method, pseudolabel set, fold, index) -> the model's timing: a model shared by several
    protocols' cells counted once."""
    models: dict[tuple[str, str, int, int], Mapping[str, Any]] = {}
    for cell in cells:
        for i, model in enumerate(cell.get("models") or []):
            models.setdefault((cell["method"], cell.get("pseudolabels") or "", cell["fold"], i), model)
    return models


def timing_note(cells: Sequence[Mapping[str, Any]]) -> str:
    """One paragraph: budget, models, training time per model (wall and CPU), evaluation time and
    the hardware the models trained on (where their runs recorded it).

    A model shared by several protocols' cells is counted once (same method, pseudolabel set, fold).
    """
    models = _unique_models(cells)
    eval_seconds = sum(float(cell.get("eval_seconds") or 0.0) for cell in cells)
    trained = [m for m in models.values() if m.get("steps")]
    if not models:
        return "Timing: not recorded (cells cached by an older fewshotkit)."
    steps = sorted({int(m["steps"]) for m in trained})
    wall = [float(m["train_seconds"]) for m in trained if m.get("train_seconds") is not None]
    cpu = [float(m["train_cpu_seconds"]) for m in trained if m.get("train_cpu_seconds") is not None]
    amp = sorted({str(m.get("amp") or "float32") for m in trained})
    budget = ", ".join(map(str, steps)) or "0"
    hardware = sorted({str(m["hardware"]) for m in trained if m.get("hardware")})
    named = sum(1 for m in trained if m.get("hardware"))
    some = f" ({named} of {len(trained)} models recorded it)" if named < len(trained) else ""
    trained_on = f" Trained on {'; '.join(hardware)}{some}." if hardware else ""
    return (f"Budget: {budget} steps per trained model ({len(trained)} models trained, precision: {', '.join(amp) or '-'}); "
            f"training time per model: {_minutes(wall)} wall, {_minutes(cpu)} CPU; "
            f"all training {sum(wall) / 60:.1f} min wall; evaluation {eval_seconds / 60:.1f} min.{trained_on}")


def method_times(cells: Sequence[Mapping[str, Any]]) -> str | None:
    """``CPU time per model, mean over folds: LABEL 21.1 min; LABEL 42.8 min.``: each method's
    training CPU time, for a table comparing methods that cost differently per step. None for one
    method or no recorded time."""
    timed = {key: float(model["train_cpu_seconds"]) for key, model in _unique_models(cells).items()
             if model.get("steps") and model.get("train_cpu_seconds") is not None}
    several_sets = len({pseudolabels for _, pseudolabels, _, _ in timed}) > 1
    by_method: dict[str, list[float]] = {}
    for (method, pseudolabels, _, _), seconds in timed.items():
        label = f"{method} + {pseudolabels}" if several_sets else method
        by_method.setdefault(label, []).append(seconds)
    if len(by_method) < 2:
        return None
    parts = [f"{method} {sum(s) / len(s) / 60:.1f} min" for method, s in by_method.items()]
    return f"CPU time per model, mean over folds: {'; '.join(parts)}."


def precision_recall(cells: Mapping[str, Mapping[str, Sequence[FoldScores]]], labels: Sequence[str]) -> ScoreTable:
    """Precision and recall (mean over classes; mean +/- std over folds) per protocol, one row per
    entry of ``cells`` (protocol -> entry -> folds), labelled by ``labels`` in the same order."""
    columns = [f"{p}: {m}" for p in cells for m in ("precision", "recall")]
    table = ScoreTable("precision / recall (%), mean over classes", columns)
    entries = list(next(iter(cells.values())))
    for label, entry in zip(labels, entries):
        row = {}
        for protocol, by_entry in cells.items():
            for metric in ("precision", "recall"):
                mean, std = summarize(by_entry[entry], metric)["mean"]
                row[f"{protocol}: {metric}"] = (mean, None if len(by_entry[entry]) == 1 else std)
        table.add(label, row)
    return table


def per_fold(cells: Mapping[str, Mapping[str, Sequence[FoldScores]]], labels: Sequence[str]) -> ScoreTable | None:
    """Dice per fold (mean over classes) per protocol, one row per entry of ``cells`` (protocol ->
    entry -> folds), labelled by ``labels``: the paired view behind a mean +/- std over folds.
    None for a single fold."""
    entries = list(next(iter(cells.values())))
    folds = sorted({f.fold for by_entry in cells.values() for entry in entries for f in by_entry[entry]})
    if len(folds) < 2:
        return None
    columns = [f"{p}: fold {i}" for p in cells for i in folds]
    table = ScoreTable("Dice per fold (%), mean over classes", columns)
    for label, entry in zip(labels, entries):
        table.add(label, {f"{protocol}: fold {f.fold}": (f.mean(), None)
                          for protocol, by_entry in cells.items() for f in by_entry[entry]})
    return table


def bench_document(config: Mapping[str, Any], cells: Mapping[str, Mapping[str, Mapping[str, Sequence[FoldScores]]]],
                   tables: Mapping[str, ScoreTable], timings: Mapping[str, Any], command: str | None) -> dict[str, Any]:
    """``bench.json``: the config, every fold's scores (table key -> protocol -> method -> folds), the
    tables, the mean and std over folds of Dice, precision and recall per class and ``"mean"``, the
    commit, the command and the timings."""
    from fewshotkit.core.git import git_commit

    return {
        "config": dict(config),
        "results": {key: {protocol: {method: [f.to_json() for f in folds] for method, folds in by_method.items()}
                          for protocol, by_method in by_protocol.items()} for key, by_protocol in cells.items()},
        "tables": {key: table.to_json() for key, table in tables.items()},
        "summary": {
            key: {protocol: {method: {metric: {c: {"mean": m, "std": sd} for c, (m, sd) in summarize(folds, metric).items()}
                                      for metric in ("dice", "precision", "recall")}
                             for method, folds in by_method.items()}
                  for protocol, by_method in by_protocol.items()}
            for key, by_protocol in cells.items()
        },
        "git_commit": git_commit(mark_dirty=True),
        "command": command,
        "timings": dict(timings),
    }


def write_report(path: Path, tables: Mapping[str, ScoreTable], timings: Mapping[str, Sequence[Mapping[str, Any]]],
                 command: str | None, details: Mapping[str, Sequence[ScoreTable]] | None = None,
                 notes: Mapping[str, str] | None = None) -> Path:
    """``results.md``: the command, then per table its title, the Markdown table, the tables of
    ``details`` under the same key (precision / recall, Dice per fold), the timing and the table's
    line of ``notes``."""
    lines = []
    if command:
        lines += ["```console", f"$ {command}", "```", ""]
    for key, table in tables.items():
        lines += [f"#### {table.title}", "", table.to_markdown().rstrip(), ""]
        for detail in (details or {}).get(key, ()):
            lines += [f"{detail.title[0].upper()}{detail.title[1:]}:", "", detail.to_markdown().rstrip(), ""]
        lines += [timing_note(timings.get(key, [])), ""]
        per_method = method_times(timings.get(key, []))
        lines += [per_method, ""] if per_method else []
        lines += [notes[key], ""] if notes and key in notes else []
    return write_atomic(path, "\n".join(lines))
