"""``fewshotkit compose``: write a method spec (TOML) from parts or a preset. No torch imports here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from fewshotkit.core.errors import FewshotkitError

if TYPE_CHECKING:
    from fewshotkit.method.spec import MethodSpec


# parts cheap to build on the CPU without files: built by compose to run their own value checks
CHEAP_PARTS = ("pooler", "classifier")


def check_values(spec: "MethodSpec") -> None:
    """Check option values: types against each factory's annotations, and the pooler and
    classifier by building them (their constructors check ranges). Raises FewshotkitError."""
    from fewshotkit.core.option_types import check_option_values
    from fewshotkit.host.plugin_host import get_registry

    registry = get_registry()
    for kind, table in spec.parts.items():
        component = registry.get(kind, table["type"])
        options = {k: v for k, v in table.items() if k != "type"}
        check_option_values(kind, component.name, component.load(), options, prefix=f"{kind}.")
    method = registry.get("method", spec.method)
    check_option_values("method", method.name, method.load(), spec.options, prefix="options.")
    for kind in CHEAP_PARTS:
        if kind in spec.parts:
            table = spec.parts[kind]
            try:
                registry.create(kind, table["type"], **{k: v for k, v in table.items() if k != "type"})
            except (TypeError, ValueError) as exc:
                raise FewshotkitError(f"[{kind}] {table['type']}: invalid option value ({exc})") from None


@click.command()
@click.option("--preset", metavar="NAME", help="Start from a preset (ssl-alpnet, ssl-adnet-cpu, ...: "
              "--list-presets names them all).")
@click.option("--method", metavar="NAME", help="Registered method (default: the preset's, else composed).")
@click.option("--backbone", metavar="NAME", help="Registered backbone type (its options reset to defaults).")
@click.option("--pooler", metavar="NAME", help="Registered pooler type (its options reset to defaults).")
@click.option("--classifier", metavar="NAME", help="Registered classifier type (its options reset to defaults).")
@click.option("--postprocess", "postprocessors", multiple=True, metavar="NAME",
              help="Post-processor applied to each query scan, in order (repeatable; see `fewshotkit components "
                   "postprocessor`; options: --set 'postprocess=[{type=\"min-size\", min_size=500}]').")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override: backbone.model=resnet34, pooler.train_window=4, options.align_weight=0.5, "
                   "image_size=128, training.steps=100 (repeatable; values are TOML literals).")
@click.option("--list-presets", is_flag=True, help="List the presets and exit.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the spec here (default: print it).")
def compose(preset: str | None, method: str | None, backbone: str | None, pooler: str | None,
            classifier: str | None, postprocessors: tuple[str, ...], assignments: tuple[str, ...], list_presets: bool,
            output: str | None) -> None:
    """Compose a method from plugins and write its flat TOML spec (validated against the registry)."""
    from fewshotkit.method import spec as specs
    from fewshotkit.method.build import validate_spec
    from fewshotkit.method.overrides import apply_overrides

    if list_presets:
        from fewshotkit.core.console import print_table

        rows = []
        for name in specs.PRESETS:
            s = specs.preset_spec(name)
            rows.append((name, s.method, *(s.parts.get(k, {}).get("type", "-") for k in specs.PART_KINDS),
                         str(s.training.get("regime", "-")), str(s.image_size or "-")))
        print_table("method presets", ("preset", "method", "backbone", "pooler", "classifier", "regime", "image size"),
                    rows)
        return
    if preset is not None:
        spec = specs.preset_spec(preset)
    else:
        if not (method or backbone or pooler or classifier):
            raise FewshotkitError("compose: give --preset NAME or parts (--backbone/--pooler/--classifier); "
                                  "see --list-presets")
        spec = specs.MethodSpec(method="composed", parts={}, options={})
    if method is not None:
        spec.method = method
        spec.preset = None
    for kind, part_type in (("backbone", backbone), ("pooler", pooler), ("classifier", classifier)):
        if part_type is not None:
            spec.parts[kind] = {"type": part_type}
            spec.preset = None
    if postprocessors:
        spec.postprocess = specs.parse_postprocess(list(postprocessors), source="--postprocess")
    if assignments:
        spec = apply_overrides(spec, assignments)
    validate_spec(spec)
    check_values(spec)
    if output is None:
        import tomli_w

        click.echo(tomli_w.dumps(spec.to_dict()), nl=False)
        return
    from fewshotkit.core.outputs import Output, check_outputs

    check_outputs([Output(output, "-o", "TOML")])
    specs.save_spec(spec, output)
    click.echo(f"wrote {output} (method {spec.method}"
               + (f", preset {spec.preset}" if spec.preset else "") + ")", err=True)
