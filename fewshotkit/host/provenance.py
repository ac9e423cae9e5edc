"""Where a component came from: plugin fingerprints (what changes when a plugin's code does) and the
hint that names the plugin a run needs when one of its components is not registered. Which plugins
one method spec uses is :mod:`fewshotkit.method.provenance`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib.metadata import Distribution
from pathlib import Path
from types import ModuleType
from typing import Any

from fewshotkit.host.code_text import code_text
from fewshotkit.host.registry import PLUGIN_HINT


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


def code_fingerprint(path: Path) -> str:
    """``code:<hex>``: what identifies the code of a plugin's file or package folder (:func:`source_hash`)."""
    return f"code:{source_hash(path)}"


def source_hash(path: Path, content: Callable[[bytes], bytes] | None = None) -> str:
    """SHA-256 (16 hex digits) of the code of a file, or of every ``*.py`` file under a directory
    (names too): the source without comments, docstrings and blank lines (:func:`code_text`), so
    editing a plugin's prose keeps its fingerprint and the results cached under it. ``content``
    hashes another form of each file's bytes instead (the identity: the bytes themselves)."""
    digest = hashlib.sha256()
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        raw = file.read_bytes()
        digest.update(content(raw) if content is not None else code_text(raw).encode())
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
