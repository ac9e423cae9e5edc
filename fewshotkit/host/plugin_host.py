"""The plugin host: loads the plugins (entry points and loose files) and fills the registries once.

Configuration, in order of precedence: the arguments of :func:`configure` (the CLI options
``--plugins-dir``, ``--disable-plugin``, ``--strict-plugins``), then the environment:

- ``FEWSHOTKIT_PLUGINS_DIR``: a directory of loose ``*.py`` plugin files (``os.pathsep``-separated);
- ``FEWSHOTKIT_DISABLE_PLUGINS``: comma-separated plugin names not to load;
- ``FEWSHOTKIT_STRICT_PLUGINS=1``: a plugin that fails to load raises instead of being skipped.

The core's own components (method ``composed``, :mod:`fewshotkit.host.core_components`) are registered
first, through the same hooks, as the reserved plugin ``fewshotkit``.

Two plugins registering one name (or alias) of one kind is a *conflict*: it is recorded (``fewshotkit plugins``
shows it) and :func:`get_registry` refuses to hand out a registry until one plugin is disabled, so a
run never silently uses a different component than the one asked for.

Each plugin has a *fingerprint* (:meth:`PluginHost.fingerprint`) that changes when its code does:
a loose file's is a hash of the file's code (comments and docstrings left out, so editing prose keeps
it); an installed plugin's is its version, plus a hash of its modules' code when that code may change
without the version: an editable (development) install, code outside any site-packages directory (a
source checkout), or a ``.dev`` version.

:class:`PluginHost` puts together :mod:`~fewshotkit.host.plugin_loading` (finding and loading plugins,
recording the ones that fail), :mod:`~fewshotkit.host.registry_fill` (their components into the
registry, conflicts) and :mod:`~fewshotkit.host.plugin_commands` (their CLI commands). A plugin that
fails in any of these steps is recorded the same way and keeps no component, and ``fewshotkit plugins``
reports the loaded and failed plugins from the host's one record. This module also holds the
process-wide host and its configuration.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from fewshotkit.core.errors import FewshotkitError, PluginError, UnknownComponentError
from fewshotkit.core.version import __version__
from fewshotkit.host import core_components
from fewshotkit.host.core_components import CORE
from fewshotkit.host.plugin_commands import PluginCommands
from fewshotkit.host.plugin_loading import ENTRY_POINT_GROUP, PluginInfo, PluginLoader
from fewshotkit.host.provenance import code_fingerprint, missing_plugin_hint
from fewshotkit.host.registry import Registry
from fewshotkit.host.registry_fill import HOOK_TO_KIND, fill_registries

__all__ = [
    "ENTRY_POINT_GROUP",
    "HOOK_TO_KIND",
    "PluginHost",
    "PluginInfo",
    "configure",
    "current_settings",
    "get_host",
    "get_registry",
    "missing_component_error",
    "plugin_versions",
    "reset",
]


class PluginHost(PluginLoader):
    """The loaded plugins (a :class:`PluginLoader`) plus the registry they fill and the CLI commands they add."""

    def __init__(
        self,
        plugins_dirs: Iterable[str | os.PathLike] = (),
        disabled: Iterable[str] = (),
        strict: bool = False,
        load_entry_points: bool = True,
    ) -> None:
        super().__init__(disabled, strict)
        self.conflicts: list[str] = []  # one message per name registered twice
        self.registry = Registry()
        self._fingerprints: dict[str, str | None] = {}
        self._register(core_components, PluginInfo(CORE, "core", core_components.__name__, __version__))
        self._commands = PluginCommands(self.pm, self.plugins)
        if load_entry_points:
            self._load_entry_points()
        for directory in plugins_dirs:
            self._load_directory(Path(directory))
        if load_entry_points:
            self._warn_unknown_disabled()
        self._fill_registries()

    def _fill_registries(self) -> None:
        """Run each plugin's register hooks, the core's first. A plugin failing in any hook keeps no
        component, takes part in no conflict and is unregistered (its commands are not added either)."""
        for info, exc in fill_registries(self.pm, self.plugins, self.registry, self.conflicts):
            self._fail(info, exc)

    def add_commands(self, cli: Any, reserved: Iterable[str] = ()) -> None:
        """Let plugins add click commands to the group ``cli``.

        A command named like one of ``reserved`` (the built-in commands) or like one an earlier
        plugin added is left out, with a warning, and listed among its plugin's conflicts. A plugin
        whose hook raises adds no command and, like any failed plugin, keeps no component.
        """
        for name, exc in self._commands.add(cli, reserved):
            self.registry.remove_plugin(name)
            self.plugins[name].components = {}
            self._fail(self.plugins[name], exc)

    def versions(self) -> dict[str, str | None]:
        """Plugin name -> version (the core left out), for recording with checkpoints and results."""
        return {name: info.version for name, info in sorted(self.plugins.items())
                if info.error is None and info.source != "core"}

    def fingerprint(self, name: str) -> str | None:
        """What identifies the code of plugin ``name`` (see the module docstring): ``"1.0"``,
        ``"1.0+code:<hex>"`` (editable/dev installs) or ``"code:<hex>"`` (a loose file), where ``<hex>``
        hashes the code without comments and docstrings (:func:`~fewshotkit.host.provenance.code_fingerprint`)."""
        if name not in self._fingerprints:
            info = self.plugins[name]
            version = info.version
            hashed = info.source == "file" or info.editable or (version is not None and "dev" in version)
            if hashed and info.files is not None and info.files.exists():
                digest = code_fingerprint(info.files)
                version = digest if info.source == "file" or version is None else f"{version}+{digest}"
            self._fingerprints[name] = version
        return self._fingerprints[name]

    def providers(self, components: Iterable[tuple[str, str]]) -> dict[str, str]:
        """``"kind:name"`` -> the plugin that registered it, for the given (kind, name) pairs."""
        return {f"{kind}:{name}": self.registry.get(kind, name).plugin for kind, name in components}

    def missing_hint(self, kind: str, name: str, versions: dict[str, Any] | None,
                     providers: dict[str, str] | None = None) -> str:
        """Why ``kind`` ``name`` (used by a run) may be missing, from the run's plugin record:
        ``versions`` (plugin -> version at training time), ``providers`` (``"kind:name"`` -> plugin)."""
        loaded = {n: i.version for n, i in self.plugins.items() if i.error is None}
        return missing_plugin_hint(loaded, kind, name, versions, providers)


_host: PluginHost | None = None
_settings: dict[str, Any] = {}


def configure(plugins_dirs: Iterable[str] = (), disabled: Iterable[str] = (), strict: bool | None = None) -> None:
    """Set how the host loads plugins; must be called before the first :func:`get_host`."""
    global _host
    _host = None
    _settings.update(plugins_dirs=tuple(plugins_dirs), disabled=tuple(disabled), strict=strict)


def current_settings() -> dict[str, Any]:
    """The arguments of the last :func:`configure` (to configure another process the same way)."""
    return dict(_settings)


def _environment() -> tuple[list[str], list[str], bool]:
    """The plugin folders, disabled plugins and strictness the environment sets."""
    dirs = [d for d in os.environ.get("FEWSHOTKIT_PLUGINS_DIR", "").split(os.pathsep) if d]
    missing = next((d for d in dirs if not Path(d).is_dir()), None)
    if missing is not None:
        raise PluginError(f"FEWSHOTKIT_PLUGINS_DIR: '{missing}' is not a folder; set it to folders of *.py "
                          f"plugin files (separated by '{os.pathsep}') or unset it")
    disabled = [d.strip() for d in os.environ.get("FEWSHOTKIT_DISABLE_PLUGINS", "").split(",") if d.strip()]
    strict = os.environ.get("FEWSHOTKIT_STRICT_PLUGINS", "") not in ("", "0", "false")
    return dirs, disabled, strict


def get_host() -> PluginHost:
    """The process-wide plugin host, created on first use."""
    global _host
    if _host is None:
        env_dirs, env_disabled, env_strict = _environment()
        strict = _settings.get("strict")
        _host = PluginHost(
            plugins_dirs=list(_settings.get("plugins_dirs", ())) + env_dirs,
            disabled=list(_settings.get("disabled", ())) + env_disabled,
            strict=env_strict if strict is None else strict,
        )
    return _host


def plugin_versions() -> dict[str, str | None]:
    """Plugin name -> version of every loaded plugin (saved with checkpoints and results)."""
    return get_host().versions()


def get_registry() -> Registry:
    """The registry of the process-wide host; a name registered by two plugins is an error here."""
    host = get_host()
    if host.conflicts:
        extra = f" (and {len(host.conflicts) - 1} more: see fewshotkit plugins)" if len(host.conflicts) > 1 else ""
        raise PluginError(host.conflicts[0] + extra)
    return host.registry


def reset() -> None:
    """Forget the host and its settings (tests)."""
    global _host
    _host = None
    _settings.clear()


def missing_component_error(exc: FewshotkitError, record: dict[str, Any], source: str) -> FewshotkitError:
    """For an error raised while loading something a run recorded (``source``, e.g. "checkpoint 'x'"):
    when it comes from an unregistered component, an error naming the plugin that provided it, from
    ``record``'s ``plugin_versions`` / ``plugin_providers``; else ``exc`` itself."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, UnknownComponentError):
        cause = cause.__cause__ or cause.__context__
    if cause is None or not getattr(cause, "kind", None):
        return exc if str(exc).startswith(source) else FewshotkitError(f"{source}: {exc}")
    kind, name = cause.kind, cause.name
    hint = get_host().missing_hint(kind, name, record.get("plugin_versions"), record.get("plugin_providers"))
    return FewshotkitError(f"{source} uses {kind} '{name}', which no loaded plugin provides: {hint}")
