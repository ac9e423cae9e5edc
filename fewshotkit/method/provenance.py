"""Which plugins a method spec uses: its components' providers and fingerprints (saved with runs
and results, part of the bench's cache keys)."""

from __future__ import annotations

from fewshotkit.host.core_components import CORE
from fewshotkit.host.plugin_host import get_host, get_registry
from fewshotkit.method.spec import MethodSpec


def spec_components(spec: MethodSpec) -> list[tuple[str, str]]:
    """The registered (kind, name) pairs ``spec`` uses: its method, its parts' and post-processors' types."""
    return [("method", spec.method), *((kind, str(table.get("type"))) for kind, table in spec.parts.items()),
            *(("postprocessor", str(table["type"])) for table in spec.postprocess)]


def plugin_providers(spec: MethodSpec) -> dict[str, str]:
    """``"kind:name"`` -> plugin, for each component of ``spec`` (saved with runs, so a missing
    plugin can be named when the run is loaded without it)."""
    get_registry()  # a name two plugins register is an error, not a guess
    return get_host().providers(spec_components(spec))


def plugin_fingerprints(spec: MethodSpec) -> dict[str, str | None]:
    """Plugin -> fingerprint (version or source hash) of each plugin providing a component of ``spec``.

    The core's own components (method ``composed`` and its aliases) are left out: fewshotkit's own code
    is not fingerprinted (no key ever covered ``fewshotkit.method.composed``, whichever plugin named it).
    """

    host = get_host()
    return {plugin: host.fingerprint(plugin) for plugin in sorted(set(plugin_providers(spec).values()))
            if plugin != CORE}
