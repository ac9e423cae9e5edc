"""``fewshotkit demo``: the end-to-end pipeline in one command. No torch imports at module level."""

from __future__ import annotations

import click


@click.command()
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", default="synthetic", show_default=True,
              type=click.Choice(["synthetic", "chaos-t2", "synapse-ct", "ms-cmrseg", "acdc"]),
              help="synthetic needs no data; the others read the dataset folder PATH.")
@click.option("-o", "--out", default="fewshotkit-demo", show_default=True, type=click.Path(file_okay=False),
              help="Output folder (store, runs, tables, figures); re-running reuses it.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Training steps (default: 1000 synthetic, 2000 real data: the CPU recipe).")
@click.option("--volumes", type=click.IntRange(min=5), default=10, show_default=True,
              help="Synthetic scans to generate (synthetic dataset only).")
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def demo(path: str | None, dataset: str, out: str, steps: int | None, volumes: int, device: str, seed: int) -> None:
    """Build a store, pseudolabel it, train the CPU recipe briefly and evaluate it against the untrained baseline.

    With no arguments it runs on synthetic scans (no download, a few minutes on a laptop CPU);
    `fewshotkit demo --dataset chaos-t2 PATH` does the same on real scans with a longer budget.
    """
    from fewshotkit.core.console import console
    from fewshotkit.apps.demo import run_demo
    from fewshotkit.core.outputs import FOLDER, Output, check_outputs

    check_outputs([Output(out, "-o", FOLDER)], {"PATH": path})

    result = run_demo(out, dataset=dataset, source=path, steps=steps, device=device, seed=seed, volumes=volumes,
                      log=lambda message: console.print(f"[dim]{message}[/dim]"))
    console.print(result.table.to_rich())
    console.print("\nMarkdown (ready to paste):\n", style="dim")
    click.echo(result.table.to_markdown())
    for file in result.files:
        console.print(f"written: {file}")
