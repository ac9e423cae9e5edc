"""Where a component came from: plugin fingerprints (what changes when a plugin's code does), the
hint that names the plugin a run needs when one of its components is not registered, and which
plugins a method spec uses (versions, providers, fingerprints: saved with runs and results, part of
the bench's cache keys)."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import Distribution
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fewshotkit.registry import PLUGIN_HINT

if TYPE_CHECKING:
    from fewshotkit.spec import MethodSpec


def module_files(module: ModuleType) -> Path | None:
    """A package's directory, or a single module's file."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file)
    return path.parent if path.name == "__init__.py" else path


def is_editable(dist: Distribution | None, files: Path | None = None) -> bool:
    """Whether a plugin's code may change without its version: an editable (development) install
    by its metadata, or code that is not inside an installation directory (a source checkout).

    The second test does not depend on which metadata ``importlib`` happens to find first: run
    from a source checkout, a stale ``*.egg-info`` there (no ``direct_url.json``) is found before
    the installed metadata, and the first test alone would then give other cache keys than the
    same code run from any other directory.
    """
    if dist is None:
        return True
    if files is not None and not any(part in ("site-packages", "dist-packages") for part in files.resolve().parts):
        return True
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except (json.JSONDecodeError, OSError):
        return False
    return bool(direct.get("dir_info", {}).get("editable"))


def source_hash(path: Path) -> str:
    """SHA-256 (16 hex digits) of a file, or of every ``*.py`` file under a directory (names too)."""
    digest = hashlib.sha256()
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def missing_plugin_hint(loaded: dict[str, str | None], kind: str, name: str, versions: dict[str, Any] | None,
                        providers: dict[str, str] | None = None) -> str:
    """One sentence naming the plugin that provided ``kind`` ``name`` when a run was made.

    ``loaded``: plugin -> version now; ``versions``: plugin -> version recorded by the run;
    ``providers``: ``"kind:name"`` -> plugin recorded by the run (exact, when present). Without
    ``providers``, the recorded plugins that are not loaded now are the candidates.
    """
    versions = versions or {}
    plugin = (providers or {}).get(f"{kind}:{name}")
    if plugin is not None:
        then = f" {versions[plugin]}" if versions.get(plugin) else ""
        if plugin in loaded:
            return (f"plugin '{plugin}'{then} provided it when the run was made; the loaded '{plugin}' "
                    f"({loaded[plugin] or 'no version'}) no longer does: install the version the run used")
        return (f"plugin '{plugin}'{then} provided it when the run was made and is not loaded now: "
                "install it, or load it with --plugins-dir")
    missing = sorted(set(versions) - set(loaded))
    if len(missing) == 1:
        return (f"the run was made with plugin '{missing[0]}' ({versions[missing[0]] or 'no version'}), "
                "which is not loaded now and probably provided it: install it, or load it with --plugins-dir")
    if missing:
        return (f"the run was made with plugins that are not loaded now ({', '.join(missing)}): "
                "install or load (--plugins-dir) the one that provides it")
    return PLUGIN_HINT.format(name=name)


def plugin_versions() -> dict[str, str | None]:
    """Plugin name -> version of every loaded plugin (saved with checkpoints and results)."""
    from fewshotkit.plugin_host import get_host

    return get_host().versions()


def spec_components(spec: "MethodSpec") -> list[tuple[str, str]]:
    """The registered (kind, name) pairs ``spec`` uses: its method, its parts' and post-processors' types."""
    return [("method", spec.method), *((kind, str(table.get("type"))) for kind, table in spec.parts.items()),
            *(("postprocessor", str(table["type"])) for table in spec.postprocess)]


def plugin_providers(spec: "MethodSpec") -> dict[str, str]:
    """``"kind:name"`` -> plugin, for each component of ``spec`` (saved with runs, so a missing
    plugin can be named when the run is loaded without it)."""
    from fewshotkit.plugin_host import get_host, get_registry

    get_registry()  # a name two plugins register is an error, not a guess
    return get_host().providers(spec_components(spec))


def plugin_fingerprints(spec: "MethodSpec") -> dict[str, str | None]:
    """Plugin -> fingerprint (version or source hash) of each plugin providing a component of ``spec``.

    The core's own components (method ``composed`` and its aliases) are left out: fewshotkit's own code
    is not fingerprinted (no key ever covered ``fewshotkit.composed``, whichever plugin named it).
    """
    from fewshotkit.core_components import CORE
    from fewshotkit.plugin_host import get_host

    host = get_host()
    return {plugin: host.fingerprint(plugin) for plugin in sorted(set(plugin_providers(spec).values()))
            if plugin != CORE}
