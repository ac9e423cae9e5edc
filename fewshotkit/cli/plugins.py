"""``fewshotkit plugins``, ``components`` and ``env``: what is installed. No torch imports here."""

from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import click

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.apps.plugin_template import TEMPLATES
from fewshotkit.host.registry import KINDS


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List the loaded plugins: name, version, hooks, components, load failures and name conflicts.

    The version is shown as bench's cache keys hold it: with a hash of the plugin's code
    (``+code:...``) where that code may change without the version (editable installs, loose files).

    `fewshotkit plugins new KIND NAME` writes a new plugin package.
    """
    if ctx.invoked_subcommand is not None:
        return
    from fewshotkit.host.plugin_host import get_host

    host = get_host()
    add_commands = getattr(ctx.find_root().command, "add_plugin_commands", None)
    if add_commands is not None:  # so a plugin command's clash or failure is listed too
        add_commands()
    infos = [host.plugins[name] for name in sorted(host.plugins)]
    # what bench keys its cached results on: the version, with a hash of the code where it may change
    prints = {i.name: host.fingerprint(i.name) if i.error is None else i.version for i in infos}
    if as_json:
        click.echo(json.dumps([{**i.to_json(), "fingerprint": prints[i.name]} for i in infos], indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    from fewshotkit.core.console import console

    table = Table(title="fewshotkit plugins")
    for column in ("plugin", "version (fingerprint)", "source", "hooks", "components / error"):
        table.add_column(column, overflow="fold")  # identifiers wrap, never cut
    for info in infos:
        if info.error:
            detail = f"[red]FAILED: {escape(info.error)}[/red]"
        else:
            detail = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.components.items())
            if info.conflicts:
                detail += f"\n[red]CONFLICT, not registered: {escape(', '.join(info.conflicts))}[/red]"
        shown = (prints[info.name] or "-").replace("+", "\n+")  # the hash on a line of its own
        table.add_row(info.name, shown, info.source, ", ".join(info.hooks), detail)
    console.print(table)
    for message in host.conflicts:
        console.print(f"[red]conflict:[/red] {escape(message)}")


@plugins.command("new")
@click.argument("kind", type=click.Choice(list(TEMPLATES)))
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Folder to write the package folder fewshotkit-NAME into.")
def new(kind: str, name: str, out: Path) -> None:
    """Write a pip-installable plugin package providing the KIND component NAME.

    The package has the entry point, the component class (a small working implementation with its
    interface's docstrings) and a test that runs fewshotkit's contract tests over it.

    \b
    fewshotkit plugins new pooler max-pool --out .
    pip install -e ./fewshotkit-max-pool && python -m pytest fewshotkit-max-pool
    """
    from fewshotkit.apps.plugin_template import new_plugin
    from fewshotkit.host.plugin_host import get_host

    host = get_host()
    if name in host.plugins:
        raise FewshotkitError(f"a plugin named '{name}' is loaded already: choose another NAME")
    try:
        taken = host.registry.get(kind, name).name
    except FewshotkitError:
        taken = None
    if taken is not None:
        raise FewshotkitError(f"the {kind} name '{name}' is taken by {kind} '{taken}': choose another NAME")
    target = new_plugin(kind, name, out)
    shown = str(target) if target.is_absolute() or str(target).startswith(".") else f"./{target}"
    click.echo(f"wrote {shown}: install it with `pip install -e {shown}`, then "
               f"`python -m pytest {shown}` runs the contract tests over {kind} '{name}'")


@click.command()
@click.argument("kind", required=False, type=click.Choice(KINDS))
@click.argument("name", required=False)
@click.option("-q", "--query", "pattern", metavar="GLOB", help="Only names matching this shell wildcard, e.g. 'alp*'.")
@click.option("--options", "show_options", is_flag=True,
              help="Show each component's options (default, type, description); implied by NAME.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def components(kind: str | None, name: str | None, pattern: str | None, show_options: bool, as_json: bool) -> None:
    """List registered components (backbones, pseudolabelers, poolers, classifiers, methods, ...).

    Each is listed once, with its aliases (other names that resolve to it, e.g. method alpnet).

    \b
    fewshotkit components pooler            # the poolers
    fewshotkit components backbone timm     # one component: its options, defaults and types
    fewshotkit components pooler --options  # every pooler's options
    """
    from fewshotkit.host.plugin_host import get_registry

    registry = get_registry()
    if name is not None:
        if kind is None:
            raise FewshotkitError("give the kind before the name, e.g. fewshotkit components pooler alp")
        items = [registry.get(kind, name)]
        show_options = True
    else:
        items = registry.list(kind, pattern)
    if as_json:
        rows = [_component_json(c, show_options) for c in items]
        click.echo(json.dumps(rows[0] if name is not None else rows, indent=2))
        return

    from rich.markup import escape

    from fewshotkit.core.console import console, print_table

    if not show_options:
        with_aliases = any(c.aliases for c in items)
        print_table("fewshotkit components", ("kind", "name", "plugin", "description", *(("aliases",) if with_aliases else ())),
                    [(c.kind, c.name, c.plugin, c.description, *((", ".join(c.aliases),) if with_aliases else ()))
                     for c in items])
        return
    for c in items:
        aliases = f" (aliases: {', '.join(c.aliases)})" if c.aliases else ""
        console.print(f"[bold]{c.kind} '{c.name}'[/bold]{aliases} (plugin '{c.plugin}'): {escape(c.summary())}")
        options = [(o.name, "(required)" if o.required else repr(o.default), o.type, o.description)
                for o in c.option_info()]
        print_table(None, ("option", "default", "type", "description"), options or [("(no options)", "", "", "")])
        if c.kind in _HOW_TO_SET:
            console.print(f"set with: {_HOW_TO_SET[c.kind]}", style="dim")


_HOW_TO_SET = {
    "backbone": "--set backbone.OPTION=VALUE", "pooler": "--set pooler.OPTION=VALUE",
    "classifier": "--set classifier.OPTION=VALUE", "method": "--set options.OPTION=VALUE",
    "pseudolabeler": "fewshotkit pseudolabel STORE NAME --set OPTION=VALUE",
}


def _component_json(component: Any, with_options: bool) -> dict[str, Any]:
    row = {"kind": component.kind, "name": component.name, "aliases": list(component.aliases),
           "plugin": component.plugin, "description": component.description}
    if with_options:
        row["summary"] = component.summary()
        row["options"] = [option.to_json() for option in component.option_info()]
    return row


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def env(as_json: bool) -> None:
    """Show versions of Python and the libraries, the CPU, numpy's SIMD targets, the compute device and
    thread count: what makes numbers differ between two machines."""
    from fewshotkit.core.version import __version__

    info = {"fewshotkit": __version__, "python": platform.python_version()}
    for dist in ("torch", "torchvision", "timm", "h5py", "scikit-image", "nibabel", "pluggy", "numpy"):
        info[dist] = _version(dist)
    import torch  # the device line is the one thing here that needs torch

    from fewshotkit.core.device import describe_cpu, describe_device, numpy_simd

    info["numpy_simd"] = numpy_simd()  # decides how numpy's sort orders ties (pseudolabels)
    info["cpu"] = describe_cpu()
    info["device"] = describe_device()
    info["threads"] = str(torch.get_num_threads())
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    from rich.table import Table

    from fewshotkit.core.console import console

    table = Table(title="fewshotkit environment", show_header=False)
    table.add_column("what", overflow="fold")
    table.add_column("value", overflow="fold")
    for key, value in info.items():
        table.add_row(key, value)
    console.print(table)
