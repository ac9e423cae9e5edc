"""A study's comparison table of one store and setting, in the layout of the paper's Tables 1-3:
one row per method (with pooler, pseudolabel set), mean Dice per class and over classes, mean +/-
std over folds, per protocol, and the published mean where a paper reports one."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from fewshotkit.apps.bench.config import BenchConfig
from fewshotkit.apps.bench.methods import published_dice
from fewshotkit.evaluation.protocol import FoldScores
from fewshotkit.evaluation.results import ScoreTable, summarize

#: the column of published mean Dice (Roy protocol), where the papers report one
PUBLISHED_COLUMN = "published (Roy mean)"

#: protocol -> entry (method [+ pooler] [+ set]) -> scores per fold
Cells = Mapping[str, Mapping[str, Sequence[FoldScores]]]


def store_preset(store_path: str) -> str | None:
    """The ingest preset a store was written with (it decides which published numbers apply)."""
    from fewshotkit.data.store.reader import SliceStore

    with SliceStore(store_path) as store:
        return store.preset


def table_key(cfg: BenchConfig, store_path: str, setting: int) -> str:
    """The name of a store's table and cell folder in ``setting``: setting 1 keeps the store's name;
    setting 2 adds ``_setting2`` and, for the ``all`` exclusion rule, ``-all``; the validation split
    adds ``_validation``."""
    rule = "" if cfg.exclusion == "any" else f"-{cfg.exclusion}"
    split = "_validation" if cfg.split == "validation" else ""
    return Path(store_path).stem + ("" if setting == 1 else f"_setting2{rule}") + split


def given_cleanup(cfg: BenchConfig) -> list[str]:
    """``--postprocess`` / ``--drop-absent`` (the config's keys) as ``KEY=VALUE`` for a table's title."""
    shown = []
    if cfg.postprocess is not None:
        tables = cfg.inference_options().tables() or []
        shown.append("postprocess=" + (",".join(str(t["type"]) for t in tables) or "none"))
    if cfg.drop_absent is not None:
        shown.append(f"drop_absent={cfg.drop_absent:g}")
    return shown


def held_folds(scores: Sequence[FoldScores]) -> str:
    """``fold 0`` / ``folds 0,1``: the folds of a row that lacks some."""
    return ("folds " if len(scores) > 1 else "fold ") + ",".join(str(f.fold) for f in scores)


def table_title(cfg: BenchConfig, store_path: str, setting: int, folds: Sequence[int] | None = None) -> str:
    """``STORE: Dice (%), setting S [(exclusion R)], K-shot, PROTOCOLS [(chunks cut as RULE)], folds F[; split][;
    inference]``; F: ``folds``, else the study's."""
    folds = cfg.folds if folds is None else folds
    grouped = len(cfg.protocol) > 1
    inference = [*cfg.eval_overrides,
                 *(o.strip() for o in cfg.overrides if o.strip().startswith(("postprocess", "drop_absent"))),
                 *given_cleanup(cfg)]
    rule = f" (exclusion {cfg.exclusion})" if setting == 2 else ""
    cut = f" (chunks cut as {cfg.chunk_rule})" if cfg.chunk_rule not in (None, "even") else ""
    held = (f"; the validation scans ({cfg.val_scans} held out of each fold's training scans)"
            if cfg.split == "validation" else f"; trained without {cfg.val_scans} validation scans"
            if cfg.val_scans else "")
    return (f"{Path(store_path).stem}: Dice (%), setting {setting}{rule}, {cfg.shots}-shot, "
            f"{' | '.join(cfg.protocol)} protocol{'s' if grouped else ''}{cut}, "
            f"fold{'s' if len(folds) > 1 else ''} {','.join(map(str, folds))}"
            + held + (f"; inference {', '.join(inference)}" if inference else ""))


def comparison_table(cfg: BenchConfig, store_path: str, setting: int, labels: Mapping[str, str],
                     cells: Cells) -> ScoreTable:
    """The table of ``cells`` (every entry of ``labels``, row label per entry). Its title names the
    study's folds, or the folds every row holds where they hold the same ones (a study still under
    way); a row that holds fewer than the title names them in its label (``ROW (folds 0,1)``)."""
    first = cells[cfg.protocol[0]]
    classes = [*next(iter(first.values()))[0].classes, "mean"]
    for scores in first.values():
        for c in scores[0].classes:
            if c not in classes:
                classes.insert(-1, c)
    grouped = len(cfg.protocol) > 1  # one column group per protocol: "roy: liver", ...
    columns = [f"{p}: {c}" if grouped else c for p in cfg.protocol for c in classes]
    preset = store_preset(store_path)
    # the papers' figures are 1-shot test-scan means of the method as published (no pooler swapped in)
    comparable = cfg.shots == 1 and cfg.split == "test" and not cfg.poolers
    published = {entry: published_dice(entry.split(" + ")[0], preset, setting, cfg.exclusion) if comparable else None
                 for entry in labels}
    if "roy" in cfg.protocol and any(v is not None for v in published.values()):
        columns.append(PUBLISHED_COLUMN)
    held = {entry: cells[cfg.protocol[0]][entry] for entry in labels}
    common = {tuple(f.fold for f in scores) for scores in held.values()}
    shown = list(common.pop()) if len(common) == 1 else cfg.folds
    table = ScoreTable(table_title(cfg, store_path, setting, shown), columns)
    for entry, label in labels.items():
        row = {}
        for protocol in cfg.protocol:
            folds = cells[protocol][entry]
            for c, (m, sd) in summarize(folds, "dice").items():
                row[f"{protocol}: {c}" if grouped else c] = (m, None if len(folds) == 1 else sd)
        value = published[entry]
        row[PUBLISHED_COLUMN] = (float("nan") if value is None else value, None)
        table.add(label if len(held[entry]) == len(shown) else f"{label} ({held_folds(held[entry])})", row)
    return table
