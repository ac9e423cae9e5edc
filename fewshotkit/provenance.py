"""Which plugins a method spec uses and what they are: versions, providers, fingerprints.

Saved with runs and results (so a missing plugin can be named when a run is loaded without it)
and part of the bench's cache keys (:mod:`fewshotkit.bench_cache`).
"""

from __future__ import annotations

from fewshotkit.spec import MethodSpec


def plugin_versions() -> dict[str, str | None]:
    """Plugin name -> version of every loaded plugin (saved with checkpoints and results)."""
    from fewshotkit.plugin_host import get_host

    return get_host().versions()


def spec_components(spec: MethodSpec) -> list[tuple[str, str]]:
    """The registered (kind, name) pairs ``spec`` uses: its method, its parts' and post-processors' types."""
    return [("method", spec.method), *((kind, str(table.get("type"))) for kind, table in spec.parts.items()),
            *(("postprocessor", str(table["type"])) for table in spec.postprocess)]


def plugin_providers(spec: MethodSpec) -> dict[str, str]:
    """``"kind:name"`` -> plugin, for each component of ``spec`` (saved with runs, so a missing
    plugin can be named when the run is loaded without it)."""
    from fewshotkit.plugin_host import get_host, get_registry

    get_registry()  # a name two plugins register is an error, not a guess
    return get_host().providers(spec_components(spec))


def plugin_fingerprints(spec: MethodSpec) -> dict[str, str | None]:
    """Plugin -> fingerprint (version or source hash) of each plugin providing a component of ``spec``.

    The core's own components (method ``composed`` and its aliases) are left out: fewshotkit's own code
    is not fingerprinted (no key ever covered ``fewshotkit.composed``, whichever plugin named it).
    """
    from fewshotkit.core_components import CORE
    from fewshotkit.plugin_host import get_host

    host = get_host()
    return {plugin: host.fingerprint(plugin) for plugin in sorted(set(plugin_providers(spec).values()))
            if plugin != CORE}
