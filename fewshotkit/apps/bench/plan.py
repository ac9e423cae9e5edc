"""``bench --plan``: a study's cells, which of them are cached, and what the rest will cost.

The cost is counted in training steps still to run (a model shared by several cells counts once; an
interrupted model counts only its remaining steps) and, where this output folder already holds
finished cells of the same row in this study, in seconds at their pace (training seconds per step, evaluation
seconds per cell). A row with no finished cell in this study takes the pace of the cells its table
holds for it under other inference options (a reading, ``--eval-set``), which share its models, in
the output folder or the study's kept cells;
without those, the training pace of its models so far in any fold, finished or under way (its
evaluation then counts as no time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshotkit.apps.bench.cells import CellRef, CellSite, in_run_order
from fewshotkit.apps.bench.study import Bench


@dataclass
class PlannedCell:
    """One cell of the plan."""

    ref: CellRef
    row: str  # the table row (with its pseudolabel set)
    cached: bool
    models: int  # models the cell's scores come from
    steps_left: int  # training steps still to run for them (a model shared with an earlier cell: 0)
    seconds: float | None  # estimated seconds to compute the cell (None: no pace known); 0 when cached
    other: str | None = None  # why a cell file of the same name is not a hit (its settings differ)


def other_settings(bench: Bench, site: CellSite) -> str | None:
    """Why a cell file of ``site``'s name, in the output folder or the kept cells, is not its hit:
    ``plugins NAME`` whose code changed, or the settings that differ; None when there is none."""
    for path in bench.cell_files(site):
        try:
            settings = json.loads(path.read_text(encoding="utf-8")).get("settings")
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(settings, dict):
            continue
        differ = sorted(k for k in {*settings, *site.key} if settings.get(k) != site.key.get(k))
        if not differ:
            continue
        if differ == ["plugins"]:
            old, new = settings.get("plugins") or {}, site.key.get("plugins") or {}
            changed = sorted(name for name in {*old, *new} if old.get(name) != new.get(name))
            if all("sha256:" in str(old.get(name)) and "code:" in str(new.get(name)) for name in changed):
                return ("keyed on the bytes of plugins " + ", ".join(changed) + " (before fingerprints hashed code): "
                        "benchmarks/studies/rekey_cells.py rekeys it")
            return f"plugin code changed: {', '.join(changed)}"
        if differ == ["store"]:
            return store_difference(settings["store"], site.key["store"])
        return f"other {', '.join(differ)}"
    return None


def store_difference(old: Any, new: Any) -> str:
    """Why a cell keyed on store ``old`` ({"data": fingerprint, "pseudolabels": set name}) is not one on
    ``new``: ``other store``, or, for the same scans, the pseudolabel set or its labels."""
    from fewshotkit.data.store.fingerprint import same_data

    try:
        same_scans = same_data(new["data"], old["data"])
        same_set = old["pseudolabels"] == new["pseudolabels"]
    except (KeyError, TypeError, AttributeError):
        return "other store"
    if same_scans and not same_set:
        return "other pseudolabel set"
    if same_scans and new["pseudolabels"]:
        # e.g. the set made again on a CPU where numpy sorts with other SIMD (docs/store-format.md)
        return f"same scans, other labels in pseudolabel set {new['pseudolabels']}"
    return "other store"


def steps_done(run_dir: Path) -> int:
    """Training steps a model's run folder holds: its run.json's final step, else its last checkpoint's."""
    try:
        run = json.loads((run_dir / "run.json").read_text())
        if run.get("status") == "completed":
            return int(run["final_step"])
    except (OSError, ValueError, KeyError):
        pass
    last = run_dir / "checkpoints" / "last.pt"
    if not last.is_file():
        return 0
    import torch

    try:  # mmap: only the step is read, not the weights
        return int(torch.load(last, map_location="cpu", weights_only=True, mmap=True).get("step", 0))
    except Exception:  # an unreadable checkpoint is retrained from scratch
        return 0


def _pace(timings: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """(training seconds per step, evaluation seconds per cell) of finished cells' timings."""
    seconds, steps, evals = 0.0, 0, []
    for timing in timings:
        for model in timing.get("models") or []:
            if model.get("steps") and model.get("train_seconds") is not None:
                seconds, steps = seconds + float(model["train_seconds"]), steps + int(model["steps"])
        if timing.get("eval_seconds") is not None:
            evals.append(float(timing["eval_seconds"]))
    return (seconds / steps if steps else None), (sum(evals) / len(evals) if evals else None)


def row_timings(folder: Path) -> list[dict[str, Any]]:
    """The timings of every cell file in one row's folder of one table, whatever its inference
    options (an unreadable file is skipped: the plan only estimates)."""
    timings = []
    for path in sorted(folder.glob("*.json")):
        try:
            timing = json.loads(path.read_text()).get("timing")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(timing, dict):
            timings.append(timing)
    return timings


def runs_pace(runs: Path) -> float | None:
    """Training seconds per step of one row's models so far, any fold or training setting (``runs``: the row's folder
    of runs; each model's last metrics record that has a training time)."""
    from fewshotkit.training.curves import read_metrics
    from fewshotkit.training.rundir import METRICS

    seconds, steps = 0.0, 0
    for log in sorted(runs.glob(f"fold*/*/{METRICS}")):
        timed = [record for record in read_metrics(log) if record.get("step") and record.get("train_s") is not None]
        if timed:
            seconds, steps = seconds + float(timed[-1]["train_s"]), steps + int(timed[-1]["step"])
    return seconds / steps if steps else None


def _cell_pace(site: CellSite, finished: dict[str, list[dict[str, Any]]], rows: dict[Path, list[dict[str, Any]]],
               paces: dict[Path, float | None], kept: Path | None = None) -> tuple[float | None, float | None]:
    """(training seconds per step, evaluation seconds) of a cell to run: from its row's finished cells in
    this study, else its table's cells of the row under other inference options (in the output folder
    and the study's ``kept`` folder of the row), else its models' training so far (evaluation then 0).
    ``rows`` and ``paces`` keep what was read."""
    if site.label not in finished and site.path.parent not in rows:
        rows[site.path.parent] = row_timings(site.path.parent) + (row_timings(kept) if kept is not None else [])
    per_step, per_eval = _pace(finished.get(site.label) or rows.get(site.path.parent, []))
    if per_step is None and site.steps > 0:
        runs = site.run_root.parent
        if runs not in paces:
            paces[runs] = runs_pace(runs)
        per_step = paces[runs]
        if per_step is not None and per_eval is None:
            per_eval = 0.0
    return per_step, per_eval


def plan(bench: Bench, order: str = "folds") -> list[PlannedCell]:
    """Every cell of ``bench``'s study in the order they run (``order``: ``folds``, every method's
    first fold first, or ``methods``), with its cache state and cost."""
    from fewshotkit.data.store.reader import SliceStore

    sites = [bench.locate(ref) for ref in in_run_order(bench.refs(), bench.config.folds, order)]
    finished: dict[str, list[dict[str, Any]]] = {}
    cached: dict[Path, bool] = {}
    for site in sites:
        hit = bench.cached(site)
        cached[site.path] = hit is not None
        if hit is not None:
            finished.setdefault(site.label, []).append(hit[1])
    counted: set[Path] = set()
    rows: dict[Path, list[dict[str, Any]]] = {}  # a row's folder -> its cells' timings, read once
    paces: dict[Path, float | None] = {}  # a row's folder of runs -> its models' training pace, read once
    planned = []
    stores: dict[str, Any] = {}
    for site in sites:
        if site.ref.store not in stores:
            stores[site.ref.store] = SliceStore(site.ref.store)
        store = stores[site.ref.store]
        groups = [group for group, _, _ in bench.models(site, store)]
        row = site.shown
        if cached[site.path]:
            planned.append(PlannedCell(site.ref, row, True, len(groups), 0, 0.0))
            continue
        left = 0
        for group in groups:
            run_dir = site.run_root / group
            if run_dir not in counted and site.steps > 0:
                counted.add(run_dir)
                left += max(0, site.steps - steps_done(run_dir))
        kept = (None if bench.config.cells is None else
                Path(bench.config.cells) / site.path.parent.relative_to(bench.out / "cells"))
        per_step, per_eval = _cell_pace(site, finished, rows, paces, kept)
        seconds = None if per_eval is None or (left and per_step is None) else left * (per_step or 0.0) + per_eval
        planned.append(PlannedCell(site.ref, row, False, len(groups), left, seconds, other_settings(bench, site)))
    for store in stores.values():
        store.close()
    return planned


def duration(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``2.1 h``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def summary(planned: list[PlannedCell], jobs: int = 1) -> str:
    """One line: cells cached and to run, training steps left and the estimated time."""
    todo = [cell for cell in planned if not cell.cached]
    line = (f"{len(planned)} cells: {len(planned) - len(todo)} cached, {len(todo)} to run; "
            f"{sum(c.steps_left for c in todo)} training steps to run")
    known = [c.seconds for c in todo if c.seconds is not None]
    if known:
        line += f"; about {duration(sum(known))} of compute for {len(known)} of them at this study's measured pace"
        if jobs > 1:  # a cell's models train as jobs of their own
            units = sum(c.models if c.steps_left else 1 for c in todo if c.seconds is not None)
            line += f" ({duration(sum(known) / min(jobs, units))} wall with {jobs} jobs at once, at best)"
    if len(known) < len(todo):
        line += f"; {len(todo) - len(known)} without a measured pace (no model of their row has trained yet)"
    return line
