"""Method specs against the live registry: read from TOML and checked (every registered name and
option), or built (the parts created and handed to the method factory)."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.method.spec import PART_KINDS, MethodSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from fewshotkit.interfaces.method import Method


def _method_part_params(factory: Any) -> dict[str, bool]:
    """Part parameters (backbone/pooler/classifier) of a method factory -> whether required."""
    params = inspect.signature(factory).parameters
    return {
        name: p.default is inspect.Parameter.empty for name, p in params.items() if name in PART_KINDS
    }


def validate_spec(spec: MethodSpec) -> None:
    """Check that every registered name exists and every option is valid (names, not values).

    Names come first: a misspelt ``--pooler alpp`` is reported as such (with a did-you-mean) before
    a missing part table is.
    """
    from fewshotkit.host.plugin_host import get_registry

    registry = get_registry()
    method = registry.get("method", spec.method)
    part_params = _method_part_params(method.load())
    types: dict[str, str] = {}
    for kind, table in spec.parts.items():
        if kind not in part_params:
            expected = ", ".join(f"[{k}]" for k in part_params) or "no part tables"
            raise FewshotkitError(f"method '{spec.method}' takes no [{kind}] table (it takes {expected})")
        type_name = table.get("type")
        if not isinstance(type_name, str):
            raise FewshotkitError(f"[{kind}] needs type = \"NAME\" (known: {', '.join(registry.names(kind))})")
        registry.get(kind, type_name)  # unknown names first
        types[kind] = type_name
    for kind, required in part_params.items():
        if required and kind not in spec.parts:
            raise FewshotkitError(
                f"method '{spec.method}' needs a [{kind}] table with a 'type' "
                f"(known: {', '.join(registry.names(kind))}; e.g. --{kind} NAME or --set {kind}.type=NAME)"
            )
    for kind, type_name in types.items():
        options = {k: v for k, v in spec.parts[kind].items() if k != "type"}
        registry.get(kind, type_name).check_options(options, prefix=f"{kind}.")
    for name in spec.options:
        if name in PART_KINDS:
            raise FewshotkitError(f"options.{name}: parts go in their own [{name}] table, not in [options]")
    method.check_options(spec.options, prefix="options.")
    if spec.image_size is not None and (not isinstance(spec.image_size, int) or spec.image_size < 16):
        raise FewshotkitError(f"image_size must be an integer >= 16, got {spec.image_size!r}")
    if not isinstance(spec.training, dict):
        raise FewshotkitError("[training] must be a table")
    for table in spec.postprocess:
        component = registry.get("postprocessor", table["type"])
        component.check_options({k: v for k, v in table.items() if k != "type"}, prefix="postprocess.")


def build_method(spec: MethodSpec) -> "Method":
    """Validate ``spec``, build its parts through the registry, then the method."""
    from fewshotkit.host.plugin_host import get_registry

    validate_spec(spec)
    registry = get_registry()
    parts = {
        kind: registry.create(kind, table["type"], **{k: v for k, v in table.items() if k != "type"})
        for kind, table in spec.parts.items()
    }
    return registry.get("method", spec.method).load()(**parts, **spec.options)


def load_spec(path: str | Path) -> MethodSpec:
    """Read and validate a TOML spec; any problem raises FewshotkitError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FewshotkitError(f"method spec '{path}' does not exist (write one with: fewshotkit compose)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FewshotkitError(f"method spec '{path}' cannot be read: {exc}") from exc
    return parse_spec(text, source=f"method spec '{path}'")


def parse_spec(text: str, source: str = "method spec") -> MethodSpec:
    """A validated spec from TOML text; errors start with ``source``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FewshotkitError(f"{source} is not valid TOML: {exc}") from exc
    try:
        spec = MethodSpec.from_dict(data)
        validate_spec(spec)
    except FewshotkitError as exc:
        raise FewshotkitError(f"{source}: {exc}") from exc
    return spec
