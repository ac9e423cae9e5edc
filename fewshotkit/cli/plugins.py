"""``fewshotkit plugins``, ``components`` and ``env``: what is installed. No torch imports here."""

from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version

import click

from fewshotkit.registry import KINDS


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List the loaded plugins: name, version, hooks, components and load failures."""
    from fewshotkit.plugin_host import get_host

    host = get_host()
    infos = [host.plugins[name] for name in sorted(host.plugins)]
    if as_json:
        click.echo(json.dumps([i.to_json() for i in infos], indent=2))
        return
    from rich.table import Table

    from fewshotkit.console import console

    table = Table(title="fewshotkit plugins")
    for column in ("plugin", "version", "source", "hooks", "components / error"):
        table.add_column(column)
    for info in infos:
        if info.error:
            detail = f"[red]FAILED: {info.error}[/red]"
        else:
            detail = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.components.items())
        table.add_row(info.name, info.version or "-", info.source, ", ".join(info.hooks), detail)
    console.print(table)


@click.command()
@click.argument("kind", required=False, type=click.Choice(KINDS))
@click.option("-q", "--query", "pattern", metavar="GLOB", help="Only names matching this shell wildcard, e.g. 'alp*'.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def components(kind: str | None, pattern: str | None, as_json: bool) -> None:
    """List registered components (backbones, pseudolabelers, poolers, classifiers, methods)."""
    from fewshotkit.plugin_host import get_registry

    items = get_registry().list(kind, pattern)
    if as_json:
        rows = [{"kind": c.kind, "name": c.name, "plugin": c.plugin, "description": c.description} for c in items]
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    from fewshotkit.console import console

    table = Table(title="fewshotkit components")
    for column in ("kind", "name", "plugin", "description"):
        table.add_column(column)
    for c in items:
        table.add_row(c.kind, c.name, c.plugin, c.description)
    console.print(table)


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def env(as_json: bool) -> None:
    """Show versions of Python and the libraries, the compute device and thread count."""
    from fewshotkit import __version__

    info = {"fewshotkit": __version__, "python": platform.python_version()}
    for dist in ("torch", "torchvision", "timm", "h5py", "scikit-image", "nibabel", "pluggy", "numpy"):
        info[dist] = _version(dist)
    import torch  # the device line is the one thing here that needs torch

    from fewshotkit.device import describe_device

    info["device"] = describe_device()
    info["threads"] = str(torch.get_num_threads())
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    from rich.table import Table

    from fewshotkit.console import console

    table = Table(title="fewshotkit environment", show_header=False)
    table.add_column("what")
    table.add_column("value")
    for key, value in info.items():
        table.add_row(key, value)
    console.print(table)
