"""``fewshotkit eval``, ``bench`` and ``segment``. No torch imports at module level."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from fewshotkit.errors import FewshotkitError
from fewshotkit.spec import PRESETS

PROTOCOL_CHOICES = ("roy", "estimated-range", "full-volume")  # fewshotkit.evaluation.query_range.PROTOCOLS
POSTPROCESS_OPTION = click.option(
    "--postprocess", "postprocess", multiple=True, metavar="NAME[,NAME]",
    help="Post-processors for each query scan, replacing the spec's [postprocess] list (repeatable; 'none' for "
         "none; see `fewshotkit components postprocessor`).")
DROP_ABSENT_OPTION = click.option(
    "--drop-absent", type=click.FloatRange(min=0, min_open=True, max=1), default=None, metavar="FRACTION",
    help="Slice presence: clear slices whose predicted foreground's probability mass is below FRACTION x "
         "the scan's largest; replaces the spec's drop_absent (as `--set drop_absent=FRACTION`; "
         "`--set drop_absent=null` turns a spec's off). Default: the spec's, off unless set.")


def _postprocess_override(values: tuple[str, ...]) -> list[str] | None:
    """``--postprocess`` values -> names (None: keep the spec's list; 'none' -> no post-processing)."""
    if not values:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip() and n.strip().lower() != "none"]


def _method_title(document: dict[str, Any]) -> str:
    """``ssl-alpnet (light + max + cosine-softmax)``: the preset or method and the parts it ran with."""
    spec = document.get("spec") or {}
    parts = [str(spec[k]["type"]) for k in ("backbone", "pooler", "classifier")
             if isinstance(spec.get(k), dict) and "type" in spec[k]]
    return f"{document['method']} ({' + '.join(parts)})" if parts else str(document["method"])


def _print_tables(folds, *, title: str, markdown: bool = True) -> None:
    from fewshotkit.console import console
    from fewshotkit.evaluation.results import fold_table

    dice = fold_table(folds, "dice", title=f"{title}: Dice (%)")
    console.print(dice.to_rich())
    for metric in ("precision", "recall"):
        table = fold_table(folds, metric)
        mean_row = table.rows[-1][1][-1]
        text = f"{mean_row[0]:.2f}" + (f" ± {mean_row[1]:.2f}" if mean_row[1] is not None else "")
        console.print(f"mean {metric}: {text} %")
    if markdown:
        console.print("\nMarkdown (ready to paste):\n", style="dim")
        click.echo(dice.to_markdown())


@click.command("eval")
@click.argument("run_or_checkpoint", type=click.Path(exists=True))
@click.option("--store", "store_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The slice store (.h5) to evaluate on.")
@click.option("--fold", type=click.IntRange(min=0), default=None,
              help="Fold to evaluate (default: the fold the checkpoint was trained for, else 0).")
@click.option("--all-folds", is_flag=True, help="Evaluate every fold and report mean ± std over folds.")
@click.option("--n-folds", type=click.IntRange(min=1), default=5, show_default=True, help="Number of folds over scans.")
@click.option("--shots", type=click.IntRange(min=1), default=1, show_default=True,
              help="Support slices per chunk (k-shot: the k slices nearest each chunk's position).")
@click.option("--protocol", type=click.Choice(PROTOCOL_CHOICES), default="roy", show_default=True,
              help="roy: segment and score the organ's true z-range only; estimated-range: segment the range "
                   "estimated from the support (as `segment` does), score every slice; full-volume: segment and "
                   "score every slice.")
@click.option("--chunks", type=click.IntRange(min=1), default=3, show_default=True, help="C, chunks per query scan.")
@POSTPROCESS_OPTION
@DROP_ABSENT_OPTION
@click.option("--class", "classes", multiple=True, metavar="NAME|VALUE",
              help="Evaluate only this class (repeatable; default: all classes of the store).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Query slices per forward pass.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the results JSON here (spec, plugin versions, commit, seed, device, protocol).")
@click.option("--save-predictions", type=click.Path(file_okay=False), default=None,
              help="Write each query scan's prediction per class as NIfTI (<scan>_<class>.nii.gz) here.")
@click.option("--figures", type=click.Path(file_okay=False), default=None,
              help="Write Fig. 4-style overlays (image, ground truth, prediction) here.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Change an inference option of the trained method (repeatable), e.g. "
                   "pooler.test_window=1 or image_size=160; options that change the weights are refused.")
def eval_command(run_or_checkpoint: str, store_path: str, fold: int | None, all_folds: bool, n_folds: int,
                 shots: int, protocol: str, chunks: int, postprocess: tuple[str, ...], drop_absent: float | None,
                 classes: tuple[str, ...], device: str, batch_size: int, seed: int, output: str | None,
                 save_predictions: str | None, figures: str | None, overrides: tuple[str, ...]) -> None:
    """Evaluate a trained run or checkpoint with the few-shot protocol (1-way, C chunks, 3D Dice)."""
    from fewshotkit.console import console
    from fewshotkit.evaluation.evaluate import evaluate_checkpoint
    from fewshotkit.evaluation.results import write_json

    if all_folds and fold is not None:
        raise FewshotkitError("give either --fold K or --all-folds, not both")
    folds = list(range(n_folds)) if all_folds else (None if fold is None else [fold])
    if folds is not None and max(folds) >= n_folds:
        raise FewshotkitError(f"--fold {max(folds)} does not exist with --n-folds {n_folds} (folds 0..{n_folds - 1})")
    document, outputs = evaluate_checkpoint(
        run_or_checkpoint, store_path, folds=folds, n_folds=n_folds, shots=shots, protocol=protocol,
        chunks=chunks, classes=classes or None, device=device, batch_size=batch_size, seed=seed,
        save_predictions=save_predictions, figures=figures, show_progress=True,
        postprocess=_postprocess_override(postprocess), drop_absent=drop_absent, overrides=overrides,
    )
    cleanup = ", ".join(t["type"] for t in document["protocol"]["postprocess"])
    absent = document["protocol"]["drop_absent"]
    cleanup += (", " if cleanup else "") + (f"drop-absent {absent:g}" if absent else "")
    shown = [item for item in overrides if item.split("=", 1)[0].strip() not in ("postprocess", "drop_absent")]
    _print_tables(outputs.folds, title=f"{_method_title(document)}, {protocol}, {shots}-shot"
                  + (f"; {cleanup}" if cleanup else "") + "".join(f"; {item}" for item in shown))
    if output:
        write_json(output, document)
        console.print(f"results: {output}")
    for scores in outputs.folds:
        if scores.support_turns:
            turned = {scan: k for scan, k in scores.support_turns.items() if k}
            console.print(f"fold {scores.fold}: support turned for {len(turned)} of {len(scores.support_turns)} "
                          "query scans" + "".join(f"; {scan} {90 * k} deg" for scan, k in turned.items()))
    if outputs.predictions:
        console.print(f"predictions: {len(outputs.predictions)} NIfTI files in {save_predictions}")
    for path in outputs.figures:
        console.print(f"figure: {path}")


@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="A TOML file with the keys below (stores, methods, folds, steps, ...); flags override it.")
@click.option("--store", "stores", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A slice store to compare on (repeatable).")
@click.option("--method", "methods", multiple=True, metavar="PRESET|SPEC.toml",
              help=f"A method (repeatable): a preset ({', '.join(PRESETS)}) or a spec file.")
@click.option("--pooler", "poolers", multiple=True, metavar="NAME",
              help="Run every composed method once per pooler (repeatable): a pooler axis, rows 'METHOD + NAME'.")
@click.option("--fold", "folds", multiple=True, type=click.IntRange(min=0), help="Fold (repeatable; default 0).")
@click.option("--all-folds", is_flag=True, help="Every fold (0 .. n-folds - 1).")
@click.option("--n-folds", type=click.IntRange(min=2), default=None,
              help="Folds over each store's scans (default 5; a store needs at least this many patients).")
@click.option("--steps", type=click.IntRange(min=0), default=None,
              help="Training steps for every trained method (the shared budget; default: each preset's).")
@click.option("--setting", "settings", multiple=True, type=click.Choice(["1", "2"]),
              help="1 (default) or 2 (exclude test classes); repeatable: one table per setting.")
@click.option("--shots", type=click.IntRange(min=1), default=None, help="Support slices per chunk (default 1).")
@click.option("--protocol", "protocols", multiple=True, type=click.Choice(PROTOCOL_CHOICES),
              help="Protocol (repeatable: one column group per protocol; default roy).")
@click.option("--recipe", type=click.Choice(["cpu"]), default=None,
              help="cpu: give every method the CPU recipe's light backbone, 128 px size and training table "
                   "(as its -cpu preset).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Spec override for every method (after a --config file's 'overrides').")
@click.option("--eval-set", "eval_overrides", multiple=True, metavar="KEY=VALUE",
              help="Inference option for every method (e.g. pooler.test_window=1): the trained models are "
                   "shared with runs without it, the scores go to cells of their own (after the file's "
                   "'eval_overrides').")
@click.option("--pseudolabels", "pseudolabels", multiple=True, metavar="SET",
              help="Pseudolabel set (or pseudolabeler name) for self-supervised training; repeatable: one row per set.")
@click.option("--seed", type=int, default=None, help="Seed shared by every method (default 0).")
@click.option("--device", default=None, help="auto (default), cpu, cuda or cuda:N.")
@click.option("-o", "--out", default=None, type=click.Path(file_okay=False),
              help="Output folder (tables, PNG, JSON, cached cells and runs). Default: bench_out.")
def bench(config_path: str | None, stores: tuple[str, ...], methods: tuple[str, ...], poolers: tuple[str, ...],
          folds: tuple[int, ...], all_folds: bool, n_folds: int | None, steps: int | None, settings: tuple[str, ...], shots: int | None,
          protocols: tuple[str, ...], recipe: str | None, overrides: tuple[str, ...], eval_overrides: tuple[str, ...],
          pseudolabels: tuple[str, ...],
          seed: int | None, device: str | None, out: str | None) -> None:
    """Compare methods on the same folds, seeds and budget (tables like the paper's Tables 1-3).

    Finished (method, fold) cells and interrupted trainings are cached in the output folder:
    re-run the same command to resume.
    """
    from fewshotkit.bench import Bench, BenchConfig
    from fewshotkit.console import console

    flags: dict[str, Any] = {
        "stores": list(stores) or None, "methods": list(methods) or None, "folds": list(folds) or None,
        "steps": steps, "setting": [int(s) for s in settings] or None, "shots": shots,
        "protocol": list(protocols) or None, "recipe": recipe, "overrides": list(overrides) or None,
        "eval_overrides": list(eval_overrides) or None,
        "pseudolabels": list(pseudolabels) or None, "seed": seed, "device": device, "out": out, "n_folds": n_folds,
        "poolers": list(poolers) or None,
    }
    if all_folds:
        flags["folds"] = "all"
    if config_path:
        config = BenchConfig.from_toml(config_path, **flags)
    else:
        given: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
        given.setdefault("out", "bench_out")
        config = BenchConfig(stores=given.pop("stores", []), methods=given.pop("methods", []), **given)
    # the command line for results.md, global options (--plugins-dir, ...) included; None in-process
    from_shell = Path(sys.argv[0]).name in ("fewshotkit", "__main__.py") and "bench" in sys.argv[1:]
    command = "fewshotkit " + shlex.join(sys.argv[1:]) if from_shell else None
    result = Bench(config, log=lambda m: console.print(f"[dim]{m}[/dim]"), command=command).run()
    for table in result.tables.values():
        console.print(table.to_rich())
        console.print("\nMarkdown (ready to paste):\n", style="dim")
        click.echo(table.to_markdown())
    console.print(f"written: {', '.join(str(p) for p in result.files)}")


def _parse_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    try:
        if not sep:
            raise ValueError
        first, last = int(lo), int(hi)
    except ValueError:
        raise FewshotkitError(f"--query-range '{text}': use Z0:Z1 (first and last slice, inclusive)") from None
    if first > last:
        raise FewshotkitError(f"--query-range '{text}': the first slice {first} is after the last {last}; "
                              f"use Z0:Z1 with Z0 <= Z1 (e.g. {last}:{first})")
    return first, last


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True), help="A run directory or .pt checkpoint.")
@click.option("--support", required=True, type=click.Path(exists=True, dir_okay=False), help="Labelled scan (NIfTI).")
@click.option("--support-label", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Its label map (NIfTI, same grid).")
@click.option("--class", "classes", multiple=True, metavar="NAME|VALUE|all",
              help="A structure to segment (repeatable; 'all': every class of the support label; default: the "
                   "label's only class). Several classes go into one label map with the support's values.")
@click.option("--query", required=True, type=click.Path(exists=True, dir_okay=False), help="Scan to segment (NIfTI).")
@click.option("--query-label", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The query's label map, to report Dice.")
@click.option("--query-range", default=None, metavar="Z0:Z1",
              help="Slices of the query holding the structures (default: estimated from the support per class).")
@click.option("--all-slices", is_flag=True, help="Segment every slice of the query, not only the estimated range.")
@click.option("--shots", type=click.IntRange(min=1), default=1, show_default=True)
@POSTPROCESS_OPTION
@DROP_ABSENT_OPTION
@click.option("--device", default="auto", show_default=True)
@click.option("--overlay", type=click.Path(dir_okay=False), default=None, help="Write a PNG montage here.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Prediction (.nii.gz).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Change an inference option of the trained method (repeatable), as for `eval`.")
def segment(checkpoint: str, support: str, support_label: str, classes: tuple[str, ...], query: str,
            query_label: str | None, query_range: str | None, all_slices: bool, shots: int,
            postprocess: tuple[str, ...], drop_absent: float | None, device: str, overlay: str | None,
            output: str, overrides: tuple[str, ...]) -> None:
    """Segment structures in a new scan from one labelled scan; the output keeps the query's geometry."""
    from fewshotkit.console import console
    from fewshotkit.segment import segment_scan

    result = segment_scan(checkpoint, support, support_label, query, output, classes=list(classes) or None,
                          query_label=query_label, query_range=_parse_range(query_range), all_slices=all_slices,
                          shots=shots, device=device, overlay=overlay, postprocess=_postprocess_override(postprocess),
                          drop_absent=drop_absent, overrides=overrides)
    support_codes, query_codes, codes = result.orientation
    moved = [f"{what} ({own})" for what, own in (("support", support_codes), ("query", query_codes)) if own != codes]
    changes = ([f"{' and '.join(moved)} segmented in {codes} orientation"] if moved else []) + (
        [result.frame] if result.frame else [])
    if changes:
        console.print("; ".join(changes) + "; the prediction written back on the query's grid")
    for item in result.classes:
        lo, hi = item.query_range
        name = f" ({item.name})" if item.name else ""
        console.print(f"class {item.value}{name}: support slices {item.support_slices}"
                      + ("" if result.support_slice_numbers else f" (of the support in {codes})")
                      + f", query slices {lo}..{hi}" + ("" if result.query_slice_numbers else f" (of the query in {codes})")
                      + (" (+ all others)" if all_slices else ""))
    if result.support_turns:
        console.print(f"support turned {90 * result.support_turns} degrees counter-clockwise to match the query "
                      "(support_orientation=search)")
    if result.support_zoom is not None:
        console.print(f"segmented inside the support's box grown by {result.support_zoom:g} of the slice on each side "
                      "(support_zoom); outside it the query is background")
    if result.test_mirror:
        console.print("each prediction averaged with that of the left-right mirrored support and query (test_mirror)")
    if result.fg_threshold != 0.5:
        console.print(f"foreground where its softmax exceeds {result.fg_threshold:g} (fg_threshold)")
    if result.drop_absent is not None:
        console.print(f"slices whose predicted mass is below {result.drop_absent:g} of the scan's largest cleared "
                      "(drop_absent)")
    if len(result.classes) > 1:
        console.print("one forward pass per query chunk for all classes" if result.joint
                      else "one forward pass per class and query chunk")
    voxels = ", ".join(f"{c.value}: {int((result.prediction == c.value).sum())}" for c in result.classes)
    console.print(f"prediction: {result.output} (voxels per class {voxels})")
    for item in result.classes:
        if item.dice is not None:
            console.print(f"Dice of class {item.value} against {query_label}: {item.dice:.2f} %")
    if result.overlay is not None:
        console.print(f"overlay: {result.overlay}")
