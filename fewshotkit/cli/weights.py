"""``fewshotkit weights``: the pretrained weights each backbone can load, and whether they are cached."""

from __future__ import annotations

import json
from typing import Any

import click

from fewshotkit.core.errors import FewshotkitError


def weights_rows(backbone: str | None, model: str | None) -> list[dict[str, Any]]:
    """One row per (backbone, pretrained value): its source, file, cache folder and cached path.
    ``backbone`` may be an alias; a backbone whose code cannot be imported gets one row with its
    ``error``, so one broken plugin does not hide the others' weights."""
    from fewshotkit.host.plugin_host import get_registry

    registry = get_registry()
    names = registry.names("backbone")
    if backbone is not None and not registry.has("backbone", backbone):
        from fewshotkit.core.userinput import did_you_mean

        raise FewshotkitError(f"fewshotkit weights: no backbone '{backbone}'.{did_you_mean(backbone, names)} "
                              f"Backbones: {', '.join(names)}")
    rows: list[dict[str, Any]] = []
    for name in [registry.get("backbone", backbone).name] if backbone else names:
        empty = {"backbone": name, "model": None, "pretrained": None, "source": None, "file": None,
                 "folder": None, "cached": None}
        try:
            lister = getattr(registry.get("backbone", name).load(), "available_weights", None)
        except FewshotkitError as exc:
            rows.append({**empty, "error": str(exc)})
            continue
        if lister is None:  # it starts from random weights or a file (backbone.weights=PATH) only
            rows.append(empty)
            continue
        rows += [{"backbone": name, **row} for row in lister(model)]
    return rows


@click.command()
@click.argument("backbone", required=False)
@click.option("--model", default=None, metavar="NAME",
              help="The model of a backbone that takes one (timm: e.g. resnet50, convnext_tiny; vit: any timm ViT).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def weights(backbone: str | None, model: str | None, as_json: bool) -> None:
    """List what each backbone can load with --set backbone.pretrained=NAME, where each file comes
    from and whether it is in the Hugging Face or torch hub cache (HF_HUB_OFFLINE=1 allows only
    cached files). Any backbone also takes a local file: --set backbone.weights=PATH.

    \b
    fewshotkit weights                      every backbone at its default model
    fewshotkit weights timm --model resnet50
    """
    rows = weights_rows(backbone, model)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    from fewshotkit.core.console import console

    table = Table(title="pretrained weights (backbone.pretrained=NAME)")
    for column in ("backbone", "model", "pretrained", "source", "cached"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if row.get("error"):
            table.add_row(row["backbone"], "-", "-", f"FAILED: {row['error']}", "-")
            continue
        if row["pretrained"] is None:
            table.add_row(row["backbone"], "-", "-", "random start (or backbone.weights=PATH)", "-")
            continue
        cached = row["cached"] or f"no: {row['file']} goes in {row['folder']}"
        table.add_row(row["backbone"], row["model"], row["pretrained"], row["source"], cached)
    console.print(table)
