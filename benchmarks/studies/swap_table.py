"""Encoder or head, over a study's folds: one method's encoders under another method's heads,
scored beside both methods as trained.

    python benchmarks/studies/swap_table.py ENCODER_RUNS HEAD_RUNS --store chaos.h5 --split validation

ENCODER_RUNS and HEAD_RUNS are the run folders of two methods in one bench study
(``OUT/runs/STORE/LABEL``, holding ``foldN-KEY/GROUP``). Every fold and class group that both hold
is swapped as ``swap_encoder.py`` does and scored on the classes its model is scored on in the
study (setting 2: the group it was trained without; setting 1: every class). ``--set KEY=VALUE``
reads every model with that inference option (``pooler.type=masked-avg``: global prototypes in
place of local ones); the same folder twice reads one method's models so. Prints a Markdown table:
per fold the mean Dice over classes, then the mean ± std over folds and the mean precision / recall.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

#: per fold, per class: (Dice, precision, recall) in %
FoldScores = dict[int, dict[str, tuple[float, float, float]]]


def _swap_encoder() -> Any:
    """The sibling script ``swap_encoder.py`` as a module (this folder is not a package)."""
    path = Path(__file__).with_name("swap_encoder.py")
    spec = importlib.util.spec_from_file_location("swap_encoder", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runs_by_fold(folder: Path) -> dict[int, Path]:
    """Fold -> its ``foldN-KEY`` folder in ``folder``; ValueError when a fold has two (other settings)."""
    found: dict[int, Path] = {}
    for path in sorted(folder.glob("fold*-*")):
        match = re.fullmatch(r"fold(\d+)-\w+", path.name)
        if match is None or not path.is_dir():
            continue
        fold = int(match.group(1))
        if fold in found:
            raise ValueError(f"fold {fold} has two runs in '{folder}' ({found[fold].name}, {path.name}): "
                             "keep the one of the study's settings")
        found[fold] = path
    if not found:
        raise ValueError(f"'{folder}' holds no foldN-KEY run folders (give OUT/runs/STORE/LABEL of a bench study)")
    return found


def _groups(fold_folder: Path) -> list[str]:
    """The class groups (``all``, ``upper``, ...) of one fold's runs."""
    return sorted(p.name for p in fold_folder.iterdir() if (p / "run.json").is_file())


def pairs(encoders: Path, heads: Path) -> list[tuple[int, str, Path, Path]]:
    """(fold, class group, encoder run, head run) for every fold and group; ValueError when the two
    folders do not hold the same folds and groups (a fold's mean would cover other classes)."""
    mine, theirs = runs_by_fold(encoders), runs_by_fold(heads)
    if sorted(mine) != sorted(theirs):
        raise ValueError(f"'{encoders}' holds folds {sorted(mine)}, '{heads}' folds {sorted(theirs)}: "
                         "give two methods of the same study")
    found = []
    for fold in sorted(mine):
        groups = _groups(mine[fold])
        if groups != _groups(theirs[fold]):
            raise ValueError(f"fold {fold}: '{mine[fold]}' holds the groups {groups}, '{theirs[fold]}' "
                             f"{_groups(theirs[fold])}: give two methods of the same study and setting")
        found += [(fold, g, mine[fold] / g, theirs[fold] / g) for g in groups]
    return found


def scored(checkpoint: Path, record: dict[str, Any], read: argparse.Namespace) -> dict[str, tuple]:
    """Class -> (Dice, precision, recall) of ``checkpoint`` on its fold's ``read.split`` scans, with
    ``read.protocol``, ``read.device`` and the inference options ``read.overrides``; the classes and
    folds as its run ``record`` says (setting 2: the group it was trained without)."""
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_checkpoint
    from fewshotkit.evaluation.options import InferenceOptions

    classes = list(record.get("exclude") or []) or None
    document, _ = evaluate_checkpoint(checkpoint, read.store, n_folds=int(record.get("n_folds", 5)),
                                      protocol=read.protocol, classes=classes,
                                      options=InferenceOptions(overrides=tuple(read.overrides)),
                                      run=EvalRun(device=read.device, split=read.split))
    summary = document["summary"]
    return {c: tuple(summary[m][c]["mean"] for m in ("dice", "precision", "recall"))
            for c in summary["dice"] if c != "mean"}


def table(rows: list[tuple[str, str, FoldScores]]) -> str:
    """Markdown: one row per (encoder, head) with each fold's mean Dice over its classes."""
    from fewshotkit.evaluation.results import mean_std

    folds = sorted({fold for _, _, scores in rows for fold in scores})
    lines = ["| encoder | head | " + " | ".join(f"fold {f}" for f in folds) + " | mean | precision / recall |",
             "|---|---|" + "---:|" * (len(folds) + 2)]
    for encoder, head, scores in rows:
        per_fold = [statistics.mean(v[0] for v in scores[f].values()) for f in folds]
        precision = statistics.mean(statistics.mean(v[1] for v in scores[f].values()) for f in folds)
        recall = statistics.mean(statistics.mean(v[2] for v in scores[f].values()) for f in folds)
        mean, spread = mean_std(per_fold)  # as bench's tables: the sample std, 0 for one fold
        lines.append(f"| {encoder} | {head} | " + " | ".join(f"{d:.2f}" for d in per_fold)
                     + f" | {mean:.2f} ± {spread:.2f} | {precision:.2f} / {recall:.2f} |")
    return "\n".join(lines)


def swap_rows(encoders: Path, heads: Path, read: argparse.Namespace) -> list[tuple[str, str, FoldScores]]:
    """The head method as trained, the encoder method as trained and the swap, fold by fold (the
    head method alone when both folders are one)."""
    from fewshotkit.method.checkpoint import read_checkpoint, save_checkpoint

    swap = _swap_encoder()
    alone = encoders.resolve() == heads.resolve()
    found: dict[str, FoldScores] = {"encoder": {}, "head": {}, "swap": {}}
    with tempfile.TemporaryDirectory() as folder:
        for fold, group, encoder_run, head_run in pairs(encoders, heads):
            encoder, head = read_checkpoint(encoder_run), read_checkpoint(head_run)
            swap.check_compatible(encoder, head)
            swapped = Path(folder) / f"fold{fold}_{group}.pt"
            runs = [("head", head_run)]
            if not alone:
                save_checkpoint(swapped, swap.swapped(encoder, head))
                runs += [("encoder", encoder_run), ("swap", swapped)]
            for kind, checkpoint in runs:
                found[kind].setdefault(fold, {}).update(scored(checkpoint, head.get("run") or {}, read))
            print(f"fold {fold} {group}: scored", file=sys.stderr)
    a, b = encoders.name, heads.name
    return [(b, b, found["head"])] if alone else [(b, b, found["head"]), (a, a, found["encoder"]), (a, b, found["swap"])]


def main(argv: list[str] | None = None) -> int:
    from fewshotkit.core.errors import FewshotkitError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("encoder_runs", type=Path, help="OUT/runs/STORE/LABEL of the method whose encoders are used")
    parser.add_argument("head_runs", type=Path, help="OUT/runs/STORE/LABEL of the method whose heads are used")
    parser.add_argument("--store", required=True, help="the slice store the runs trained on")
    parser.add_argument("--split", choices=["test", "validation"], default="validation")
    parser.add_argument("--protocol", choices=["roy", "estimated-range", "full-volume"], default="roy")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="an inference option every model is read with (repeatable)")
    args = parser.parse_args(argv)
    try:
        print(table(swap_rows(args.encoder_runs, args.head_runs, args)))
    except (FewshotkitError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
