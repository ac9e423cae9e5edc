"""``fewshotkit store``: inspecting a slice store (info, check, show).

No torch imports here: these commands start fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def store() -> None:
    """Inspect a slice store: info, check, show."""


def store_summary(path: str) -> dict:
    """What ``store info`` shows of the store at ``path``, as plain data (its ``--json``)."""
    from fewshotkit.data.store.axes import stored_codes
    from fewshotkit.data.store.reader import SliceStore

    with SliceStore(path) as s:
        volumes = []
        for vol in s.volumes:
            attrs = s.volume_attrs(vol)
            volumes.append({
                "id": vol, "shape": list(s.shape(vol)), "patient": attrs.get("patient"),
                "spacing": attrs.get("spacing"), "source_image": attrs.get("source_image"),
                "orientation": stored_codes(attrs),
                "class_slices": {s.classes[c]: int(len(s.class_slices(c, vol))) for c in s.class_values},
            })
        sets = {}
        for name in s.pseudolabel_sets:
            info = s.pseudolabel_set_attrs(name)
            sets[name] = {"component": info.get("component"), "params": info.get("params"),
                          "plugin": info.get("plugin"), "plugin_version": info.get("plugin_version"),
                          "labels_sha256": info.get("labels_sha256"), "made_with": info.get("made_with")}
        return {
            "path": str(s.path), "preset": s.preset, "modality": s.modality,
            "classes": {str(v): n for v, n in s.classes.items()}, "normalization": s.normalization,
            "n_volumes": len(s.volumes), "n_slices": s.n_slices,
            "preprocessing": s.preprocessing, "pseudolabel_sets": sets, "volumes": volumes,
        }


@store.command("info")
@click.argument("path", metavar="STORE", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def store_info(path: str, as_json: bool) -> None:
    """Preset, classes, volumes, slices per class and pseudolabel sets of STORE."""
    info = store_summary(path)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    from rich.table import Table

    from fewshotkit.core.console import console
    from fewshotkit.data.store.axes import mixed_orientations

    console.print(f"[bold]{info['path']}[/bold]: preset {info['preset']}, {info['modality']}, "
                  f"{info['n_volumes']} volumes, {info['n_slices']} slices")
    classes = list(info["classes"].values())
    table = Table(title="volumes (slices containing each class)")
    for col in ("volume", "Z x H x W", "axes", *classes):
        table.add_column(col, overflow="fold")
    for v in info["volumes"]:
        table.add_row(v["id"], " x ".join(map(str, v["shape"])), v["orientation"] or "-",
                      *(str(v["class_slices"][c]) for c in classes))
    table.add_row("total", str(info["n_slices"]), "",
                  *(str(sum(v["class_slices"][c] for v in info["volumes"])) for c in classes), style="bold")
    console.print(table)
    mixed = mixed_orientations({v["id"]: v["orientation"] for v in info["volumes"] if v["orientation"]})
    if mixed:
        console.print(f"[yellow]warning:[/yellow] {mixed}")
    if info["pseudolabel_sets"]:
        sets = Table(title="pseudolabel sets")
        for col in ("set", "pseudolabeler", "parameters", "plugin", "version", "made with"):
            sets.add_column(col, overflow="fold")
        for name, s in info["pseudolabel_sets"].items():
            params = " ".join(f"{k}={v}" for k, v in sorted((s["params"] or {}).items()))
            sets.add_row(name, str(s["component"]), params, str(s["plugin"]), str(s["plugin_version"]),
                         s["made_with"] or "-")
        console.print(sets)
    else:
        console.print(f"no pseudolabel sets (make one: fewshotkit pseudolabel {path} --with felzenszwalb)")


@store.command("check")
@click.argument("path", metavar="STORE", type=click.Path())
def store_check(path: str) -> None:
    """Check shapes, dtypes, chunking, the class index against the labels and the pseudolabel sets."""
    from fewshotkit.core.console import console
    from fewshotkit.data.store.check import check_store

    problems = check_store(path)
    if problems:
        for line in problems:
            click.echo(f"problem: {line}", err=True)
        raise click.ClickException(f"{path}: {len(problems)} problem(s) found")
    console.print(f"{path}: OK")


@store.command("show")
@click.argument("path", metavar="STORE", type=click.Path())
@click.argument("volume")
@click.argument("z", type=int)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--set", "set_name", default=None, help="Pseudolabel set (default: the only one, if any).")
def store_show(path: str, volume: str, z: int, output: str, set_name: str | None) -> None:
    """Write a PNG of slice Z of VOLUME with label and pseudolabel overlays."""
    from fewshotkit.core.outputs import Output, check_outputs
    from fewshotkit.data.store.reader import SliceStore
    from fewshotkit.data.store.show import render_slice

    check_outputs([Output(output, "-o", "PNG")], {"STORE": path})
    with SliceStore(path) as s:
        s.shape(volume)
        render_slice(s, volume, z, output, set_name)
        sets = s.pseudolabel_sets
    click.echo(f"wrote {Path(output)}")
    if set_name is None and len(sets) > 1:
        click.echo(f"note: no pseudolabel panel: '{path}' has {len(sets)} pseudolabel sets ({', '.join(sets)}); "
                   "choose one with --set NAME", err=True)
