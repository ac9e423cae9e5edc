"""``fewshotkit bench``: train (or load) and evaluate several methods on the same folds, seeds and
budget, and write the comparison in the layout of the paper's Tables 1-3.

Models per (store, method, fold), as in the paper:

- self-supervised methods in setting 1: one model per fold, evaluated on every class;
- setting 2, and the supervised baselines in both settings: one model per excluded class group
  (``upper`` = liver + spleen, ``lower`` = both kidneys; stores whose classes the groups do not
  cover get one group per class). Setting 2 drops every training slice showing a group class;
  supervised training never sees the group's labels. Each model is evaluated on its group;
- untrained methods (``steps = 0``, e.g. ALPNet-init): one model per fold.

Everything is cached under the output folder: a finished (store, method, fold) cell is a JSON file
reused when its settings match, and an interrupted training run is resumed, so re-running the
same command continues where it stopped. What "settings" covers (spec, budget, store fingerprint,
the providing plugins' versions or source hashes, ...) is listed in :mod:`fewshotkit.apps.bench.cache`.

``poolers`` (``--pooler``) adds an axis: every composed method is run once per pooler, its row
labelled ``METHOD + POOLER``. Several ``pseudolabels`` sets (``--pseudolabels``, repeatable; e.g.
``felzenszwalb`` and ``supervoxel``) add another: every self-supervised method is trained once per
set, its row labelled ``METHOD + SET``; the cells of each set are those of a bench given that set
alone. ``protocol`` (``--protocol``, repeatable) evaluates the same models with several protocols,
one column group per protocol. A spec's ``[postprocess]`` list (e.g.
``--set postprocess=largest-component``) is part of the evaluation, not of the models' key: changing
it re-evaluates without retraining, into cells of its own. So do ``eval_overrides`` (``--eval-set
pooler.test_window=1``): inference options applied to the trained models when they are evaluated.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from fewshotkit.apps.bench.cache import digest as _digest
from fewshotkit.apps.bench.cache import evaluation_key, training_key, variant_suffix
from fewshotkit.apps.bench.cell_file import merge_groups, read_cell, write_cell
from fewshotkit.apps.bench.cells import CellRef, CellSite
from fewshotkit.apps.bench.config import BenchConfig
from fewshotkit.apps.bench.methods import method_label, method_spec
from fewshotkit.apps.bench.models import score_model, trained_model
from fewshotkit.apps.bench.report import model_timing
from fewshotkit.apps.bench.result import BenchResult
from fewshotkit.apps.bench.tables import comparison_table, table_key
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.core.names import safe_name
from fewshotkit.data.episodes.filters import class_groups
from fewshotkit.evaluation.protocol import FoldScores
from fewshotkit.method.overrides import apply_inference_overrides
from fewshotkit.method.build import validate_spec


class NothingCached(FewshotkitError):
    """A table asked for from the cache (``--cached``) has no cached cell."""


class Bench:
    """Runs a :class:`BenchConfig`; see the module docstring."""

    def __init__(self, config: BenchConfig, log: Callable[[str], None] | None = None, command: str | None = None,
                 cached_only: bool = False, only: Collection[str] | None = None) -> None:
        self.config = config
        self.cached_only = cached_only  # tables of the cells already cached; nothing is trained or evaluated
        self.only = None if only is None else set(only)  # the entries (rows) to run; None: every one
        self.out = Path(config.out)
        self.log = log or (lambda message: None)
        self.command = command
        self._timings: list[dict[str, Any]] = []  # the cells of the table being built
        self._done, self._total = 0, 0  # cells visited / in the whole run (the log's progress)
        self._ran: set[Path] = set()  # cell files this process wrote: read back, they are not "cached"
        self._rows: list[tuple[str, str | None, str | None, str]] = []

    def _budget(self, method: str, spec: Any) -> tuple[int, str]:
        """(training steps, regime) of ``method`` (its ``spec``) under this bench: 0 steps for untrained
        methods, else the config's ``steps`` (shared, or this method's entry of a table), else the spec's
        (a spec without ``steps`` trains as ``fewshotkit train`` would: the training table's default)."""
        from fewshotkit.training.config import TrainingConfig

        preset_steps = int(spec.training.get("steps", TrainingConfig.steps))
        chosen = self.config.steps.get(method) if isinstance(self.config.steps, dict) else self.config.steps
        steps = 0 if preset_steps == 0 else (chosen if chosen is not None else preset_steps)
        return steps, spec.training.get("regime", "ssl")

    # -- one cell -----------------------------------------------------------------------------
    def locate(self, ref: CellRef) -> CellSite:
        """Where the cell ``ref`` is cached, with the key that decides a hit (nothing is trained)."""
        cfg = self.config
        label = method_label(ref.method, ref.pooler, cfg.methods)
        pseudolabels = ref.pseudolabels or (cfg.pseudolabels[0] if cfg.pseudolabels else None)
        spec = method_spec(ref.method, cfg.recipe, cfg.overrides)
        if ref.pooler is not None:
            if "pooler" not in spec.parts:
                raise FewshotkitError(f"bench --pooler {ref.pooler}: method '{ref.method}' has no [pooler] part to replace")
            spec = method_spec(ref.method, cfg.recipe, [f"pooler.type={ref.pooler}", *cfg.overrides])
        steps, regime = self._budget(ref.method, spec)
        options, evaluation = evaluation_key(cfg, spec)  # evaluation, not training: the models' key leaves it out
        spec = dataclasses.replace(spec, postprocess=[], drop_absent=None)
        training = training_key(spec, ref.store, steps=steps, seed=cfg.seed, setting=ref.setting, fold=ref.fold,
                                n_folds=cfg.n_folds, pseudolabels=pseudolabels, regime=regime,
                                exclusion=cfg.exclusion, val_scans=cfg.val_scans, val_from=cfg.val_from)
        key = {**training, "protocol": ref.protocol, **evaluation}
        store_key = Path(ref.store).stem
        stem = f"fold{ref.fold}" + ("" if ref.protocol == "roy" else f"_{ref.protocol}")
        # a named pseudolabel set and an evaluation variant (post-processing, --eval-set) get files of
        # their own (the key decides a hit)
        named = f"_{safe_name(pseudolabels)}" if pseudolabels and regime == "ssl" and steps > 0 else ""
        variant = variant_suffix(key)
        folder = self.out / "cells" / table_key(self.config, ref.store, ref.setting) / safe_name(label)
        # models depend on the training settings only: another protocol re-uses them
        run_root = self.out / "runs" / store_key / safe_name(label) / f"fold{ref.fold}-{_digest(training)}"
        return CellSite(ref, label, f"{label} + {pseudolabels}" if named else label, named, spec, steps, regime,
                        pseudolabels, key, _digest(key), folder / f"{stem}{named}{variant}.json", run_root,
                        options, older=folder / f"{stem}{variant}.json")

    def cell_files(self, site: CellSite) -> list[Path]:
        """The files that may hold the cell ``site``, in the order they are read: its own, the one
        cells had before pseudolabel sets were named, its keyed one; then the same in the study's kept cells."""
        own = [p for p in dict.fromkeys((site.path, site.older, site.keyed)) if p is not None]
        kept = [] if self.config.cells is None else [Path(self.config.cells) / p.relative_to(self.out / "cells")
                                                     for p in own]
        return [*own, *kept]

    def cached(self, site: CellSite) -> tuple[FoldScores, dict[str, Any]] | None:
        """(scores, timing) of the cell ``site`` from its file (or the file cells had before pseudolabel
        sets were named, or its keyed file: :attr:`CellSite.keyed`), in the output folder, else in the
        study's kept cells (``cells``, read only), or None."""
        for path in self.cell_files(site):
            hit = read_cell(path, site.digest, self.log)
            if hit is not None:
                return hit
        return None

    def models(self, site: CellSite, store: Any) -> list[tuple[str, list[str], list[str]]]:
        """The models a cell trains: (class group, excluded classes, evaluated classes) per model."""
        all_classes = [store.classes[v] for v in sorted(store.classes)]
        if site.steps == 0 or (site.regime == "ssl" and site.ref.setting == 1):
            return [("all", [], all_classes)]
        return [(g, cls, cls) for g, cls in class_groups(store).items()]

    def _record(self, site: CellSite, timing: dict[str, Any]) -> None:
        """Add a cell's ``timing`` to the table being built (its timing note)."""
        self._timings.append({"method": site.label, "fold": site.ref.fold, "protocol": site.ref.protocol,
                              "pseudolabels": site.named[1:], **timing})

    def written_by_this_run(self, ref: CellRef) -> None:
        """Note a cell a job of this run wrote: read back for the tables, it is not logged as cached."""
        site = self.locate(ref)
        self._ran.update((site.path, site.keyed))

    def _from_cache(self, site: CellSite) -> FoldScores | None:
        """The cell ``site``'s scores from its file (its timing recorded), else None."""
        hit = self.cached(site)
        if hit is None:
            return None
        if site.path not in self._ran and site.keyed not in self._ran:
            self.log(f"cached: {site.shown} fold {site.ref.fold} on {Path(site.ref.store).stem} ({site.ref.protocol})")
        self._record(site, hit[1])
        return hit[0]

    def run_cell(self, ref: CellRef) -> FoldScores:
        """Scores of the cell ``ref``: from the cache, else trained (or resumed) and evaluated, then cached."""
        from fewshotkit.data.store.reader import SliceStore

        site = self.locate(ref)
        fold, protocol = ref.fold, ref.protocol
        hit = self._from_cache(site)
        if hit is not None:
            return hit

        store = SliceStore(ref.store)
        plan = self.models(site, store)
        parts, models, eval_seconds = [], [], 0.0
        for group, exclude, classes in plan:
            checkpoint = trained_model(self.config, site, site.run_root / group, exclude, self.log)
            models.append(model_timing(site.run_root / group, site.steps))
            self.log(f"evaluating {site.shown} fold {fold} ({', '.join(classes)}; {protocol})")
            # figures of other settings, splits and readings of the same row keep names of their own
            prefix = safe_name(f"{table_key(self.config, ref.store, ref.setting)}_{site.label}{site.named}_{protocol}"
                               + variant_suffix(site.key) + ("" if group == "all" else f"_{group}")) + "_"
            t0 = time.perf_counter()
            parts.append(score_model(self.config, site, checkpoint, store, classes, prefix))
            eval_seconds += time.perf_counter() - t0
        all_classes = [store.classes[v] for v in sorted(store.classes)]
        scores = merge_groups(parts, all_classes, [group for group, _, _ in plan])
        timing = {"steps": site.steps, "models": models, "eval_seconds": round(eval_seconds, 2)}
        path = write_cell(site, scores, timing)
        self._ran.add(path)
        self._record(site, timing)
        return scores

    # -- everything ---------------------------------------------------------------------------
    def entries(self) -> list[tuple[str, str | None, str | None, str]]:
        """The rows: (method, pooler, pseudolabel set, entry key), one per pooler and, for methods
        trained on pseudolabels, one per set when several are given."""
        cfg = self.config
        entries: list[tuple[str, str | None, str | None, str]] = []
        for method in cfg.methods:
            spec = method_spec(method, cfg.recipe, cfg.overrides)
            options = cfg.inference_options()
            if options.method_overrides() or options.postprocess is not None:  # names checked before anything trains
                tables = options.tables()
                validate_spec(apply_inference_overrides(dataclasses.replace(spec, postprocess=tables or spec.postprocess),
                                                        options.method_overrides()))
            steps, regime = self._budget(method, spec)
            trains_on_sets = regime == "ssl" and steps > 0
            sets: list[str | None] = [*cfg.pseudolabels] if trains_on_sets and len(cfg.pseudolabels) > 1 else [None]
            poolers: list[str | None] = [*cfg.poolers] or [None]
            for pooler in poolers:
                for pseudolabels in sets:
                    entry = " + ".join(x for x in (method, pooler, pseudolabels) if x is not None)
                    entries.append((method, pooler, pseudolabels, entry))
        return [e for e in entries if self.only is None or e[3] in self.only]

    def refs(self) -> list[CellRef]:
        """Every cell of the study, in the order a serial run visits them."""
        cfg = self.config
        rows = self.entries()
        return [CellRef(store, method, fold, pooler, protocol, setting, sets)
                for store in cfg.stores for setting in cfg.setting for method, pooler, sets, _ in rows
                for protocol in cfg.protocol for fold in cfg.folds]

    def _collect(self, store_path: str, setting: int) -> tuple[dict[str, str], dict[str, dict[str, list[FoldScores]]]]:
        """(row label per entry, cells: protocol -> entry -> scores per fold) of one store and setting,
        every cell run or read from the cache; with ``cached_only``, the folds cached under every protocol,
        and only the entries that have one."""
        cfg = self.config
        cells: dict[str, dict[str, list[FoldScores]]] = {p: {} for p in cfg.protocol}
        labels: dict[str, str] = {}
        for method, pooler, pseudolabels, entry in self._rows:
            label = method_label(method, pooler, cfg.methods) + ("" if pseudolabels is None else f" + {pseudolabels}")
            found: dict[str, list[FoldScores]] = {}
            for protocol in cfg.protocol:
                found[protocol] = []
                for fold in cfg.folds:
                    self._done += 1
                    ref = CellRef(store_path, method, fold, pooler, protocol, setting, pseudolabels)
                    self.log(f"cell {self._done}/{self._total}: {label}, fold {fold}, {protocol}, setting {setting}")
                    scores = self._from_cache(self.locate(ref)) if self.cached_only else self.run_cell(ref)
                    if scores is not None:
                        found[protocol].append(scores)
            shared = set.intersection(*({f.fold for f in folds} for folds in found.values()))
            if shared:
                labels[entry] = label
                for protocol, folds in found.items():
                    cells[protocol][entry] = [f for f in folds if f.fold in shared]
        return labels, cells

    def _add_table(self, result: BenchResult, store_path: str, setting: int) -> None:
        """Build the table of one store and setting (setting 1 keeps the store's name as its key) and add
        it to ``result``; a table without rows (``--cached`` before any of its cells) is
        :class:`NothingCached`."""
        key = table_key(self.config, store_path, setting)
        self._timings = []
        rows, cells = self._collect(store_path, setting)
        if not rows:
            raise NothingCached(f"bench --cached: no cell of {key} is cached in {self.out}; "
                                "run the study without --cached first" if self.cached_only else
                                f"bench: no row of {key} to run")
        table = comparison_table(self.config, store_path, setting, rows, cells)
        result.add_table(key, table, rows, cells, self._timings)

    def run(self, report: bool = True) -> BenchResult:
        """Every table of the study (its cells run or read from the cache); with ``report``, its
        files, ``bench.json`` and ``results.md`` written to the output folder."""
        cfg = self.config
        result = BenchResult({}, [], {})
        self._done = 0
        self._rows = self.entries()  # the same rows in every table
        self._total = len(cfg.stores) * len(cfg.setting) * len(self._rows) * len(cfg.protocol) * len(cfg.folds)
        empty: list[NothingCached] = []
        for store_path in cfg.stores:
            for setting in cfg.setting:
                try:
                    self._add_table(result, store_path, setting)
                except NothingCached as exc:  # --cached: the tables that have cells are still built
                    if not self.cached_only:
                        raise
                    self.log(f"{exc}; its table is left out")
                    empty.append(exc)
        if not result.tables:
            raise empty[0]
        if report:
            result.write_tables(cfg)
            result.write_documents(cfg, self.command)
        return result
