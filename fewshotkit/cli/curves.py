"""``fewshotkit curves``: the Dice-vs-time curves of several runs on the same axes."""

from __future__ import annotations

from pathlib import Path

import click

from fewshotkit.cli.options import PROTOCOL_CHOICES
from fewshotkit.core.errors import FewshotkitError


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--label", "labels", multiple=True, metavar="TEXT",
              help="Legend label per run, in order (default: the method's table name, else the folder name).")
@click.option("--protocol", "protocols", multiple=True, default=("roy", "full-volume"), show_default=True,
              type=click.Choice(PROTOCOL_CHOICES),
              help="Protocols to draw (solid, dashed, ...).")
@click.option("--title", default="", help="Figure title.")
@click.option("--clock", type=click.Choice(["wall", "cpu"]), default="wall", show_default=True,
              help="Time axis: wall-clock minutes of training steps, or the training process's CPU minutes "
                   "(robust when other processes share the machine).")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
def curves(runs: tuple[str, ...], labels: tuple[str, ...], protocols: tuple[str, ...], title: str, clock: str,
           out_path: str) -> None:
    """Plot Dice against training time for runs trained with --eval-every.

    \b
    fewshotkit curves runs/old runs/new --label "old recipe" --label "new recipe" -o curve.png
    """
    from fewshotkit.core.console import console
    from fewshotkit.core.outputs import Output, check_outputs
    from fewshotkit.training.curves import plot_dice_curves, read_metrics
    from fewshotkit.training.eval_curve import CURVE_JSONL

    if labels and len(labels) != len(runs):
        raise FewshotkitError(f"--label given {len(labels)} times for {len(runs)} runs; give one per run or none")
    series = []
    names = list(labels) or default_labels([Path(run) for run in runs])
    for index, run in enumerate(runs):
        path = Path(run) / CURVE_JSONL
        if not path.is_file():
            raise FewshotkitError(f"'{run}' has no {CURVE_JSONL}; train it with --eval-every N")
        series.append((names[index], read_metrics(path)))
    check_outputs([Output(out_path, "-o", "PNG")], {"RUN": [Path(run) / CURVE_JSONL for run in runs]})
    written = plot_dice_curves(series, Path(out_path), protocols=protocols, title=title, clock=clock)
    if written is None:
        raise FewshotkitError("the runs' curve files hold no evaluation yet")
    for label, records in series:
        best = max(records, key=lambda r: r.get("roy", {}).get("dice", float("-inf")))
        last = records[-1]
        console.print(f"{label}: last step {last['step']} ({last['train_min']:.1f} min): "
                      + ", ".join(f"{p} {last[p]['dice']:.2f}" for p in protocols if p in last)
                      + f"; best roy {best.get('roy', {}).get('dice', float('nan')):.2f} at step {best['step']}",
                      highlight=False)
    console.print(f"wrote {written}", highlight=False)


def default_labels(runs: list[Path]) -> list[str]:
    """Each run's legend label: its preset's table name (``ADNet (CPU recipe)``), else its folder's
    name; runs that would share one get their folder's name added."""
    from fewshotkit.apps.bench.methods import METHOD_LABELS
    from fewshotkit.method.build import load_spec

    def label(run: Path) -> str:
        try:
            preset = load_spec(run / "spec.toml").preset
        except (FewshotkitError, OSError):
            return run.name
        return METHOD_LABELS.get(preset or "", run.name)

    found = [label(run) for run in runs]
    return [f"{name} ({run.name})" if found.count(name) > 1 and name != run.name else name
            for name, run in zip(found, runs)]
