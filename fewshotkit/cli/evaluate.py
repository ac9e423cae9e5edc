"""``fewshotkit eval``: a trained run scored with the few-shot protocol."""

from __future__ import annotations

from typing import Any

import click

from fewshotkit.cli.options import PROTOCOL_CHOICES, inference_options
from fewshotkit.core.errors import FewshotkitError


def _method_title(document: dict[str, Any]) -> str:
    """``ssl-alpnet (light + max + cosine-softmax)``: the preset or method and the parts it ran with."""
    spec = document.get("spec") or {}
    parts = [str(spec[k]["type"]) for k in ("backbone", "pooler", "classifier")
             if isinstance(spec.get(k), dict) and "type" in spec[k]]
    return f"{document['method']} ({' + '.join(parts)})" if parts else str(document["method"])


def _print_tables(folds, *, title: str, markdown: bool = True) -> None:
    from fewshotkit.core.console import console
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
@click.option("--n-folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Number of folds over scans (the store needs at least this many patients).")
@click.option("--protocol", type=click.Choice(PROTOCOL_CHOICES), default="roy", show_default=True,
              help="roy: segment and score the organ's true z-range only; estimated-range: segment the range "
                   "estimated from the support (as `segment` does), score every slice; full-volume: segment and "
                   "score every slice.")
@inference_options()
@click.option("--class", "classes", multiple=True, metavar="NAME|VALUE",
              help="Evaluate only this class (repeatable; default: all classes of the store).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the results JSON here (spec, plugin versions, commit, seed, device, protocol).")
@click.option("--save-predictions", type=click.Path(file_okay=False), default=None,
              help="Write each query scan's prediction per class as NIfTI (<scan>_<class>.nii.gz) here.")
@click.option("--figures", type=click.Path(file_okay=False), default=None,
              help="Write Fig. 4-style overlays (image, ground truth, prediction) here.")
@click.option("--split", type=click.Choice(["test", "validation"]), default="test", show_default=True,
              help="Score the fold's test scans, or the validation scans the run held out of its training scans "
                   "(train --val-scans), on which inference options are chosen.")
def eval_command(run_or_checkpoint: str, store_path: str, fold: int | None, all_folds: bool, n_folds: int,
                 protocol: str, inference: Any, classes: tuple[str, ...], device: str, seed: int,
                 output: str | None, save_predictions: str | None, figures: str | None, split: str) -> None:
    """Evaluate a trained run or checkpoint with the few-shot protocol (1-way, C chunks, 3D Dice)."""
    from fewshotkit.core.console import console
    from fewshotkit.core.outputs import FOLDER, Output, check_outputs
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_checkpoint
    from fewshotkit.evaluation.results import write_json
    from fewshotkit.method.checkpoint import checkpoint_inputs

    check_outputs([Output(output, "-o", "JSON") if output else None,
                   Output(save_predictions, "--save-predictions", FOLDER) if save_predictions else None,
                   Output(figures, "--figures", FOLDER) if figures else None],
                  {"--store": store_path, "RUN_OR_CHECKPOINT": checkpoint_inputs(run_or_checkpoint)})
    if all_folds and fold is not None:
        raise FewshotkitError("give either --fold K or --all-folds, not both")
    if split == "validation" and (all_folds or fold is not None):
        raise FewshotkitError("--split validation scores the run's own validation scans; leave out --fold and --all-folds")
    folds = list(range(n_folds)) if all_folds else (None if fold is None else [fold])
    if folds is not None and max(folds) >= n_folds:
        raise FewshotkitError(f"--fold {max(folds)} does not exist with --n-folds {n_folds} (folds 0..{n_folds - 1})")
    document, outputs = evaluate_checkpoint(
        run_or_checkpoint, store_path, folds=folds, n_folds=n_folds, protocol=protocol, classes=classes or None,
        options=inference, run=EvalRun(device=device, seed=seed, save_predictions=save_predictions, figures=figures,
                                       show_progress=True, split=split),
    )
    cleanup = ", ".join(t["type"] for t in document["protocol"]["postprocess"])
    absent = document["protocol"]["drop_absent"]
    cleanup += (", " if cleanup else "") + (f"drop-absent {absent:g}" if absent else "")
    shown = [item for item in inference.method_overrides()
             if item.partition("=")[0].strip() not in ("postprocess", "drop_absent")]
    trained = (document.get("training") or {}).get("run") or {}
    setting = f", setting 2 (exclusion {trained.get('exclusion', 'any')})" if trained.get("setting") == 2 else ""
    setting += ", the run's validation scans" if split == "validation" else ""
    cut = f" (chunks cut as {inference.chunk_rule})" if inference.chunk_rule != "even" else ""
    _print_tables(outputs.folds, title=f"{_method_title(document)}{setting}, {protocol}{cut}, {inference.shots}-shot"
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
