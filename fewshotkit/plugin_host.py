"""The plugin host: loads plugins (entry points and loose files), fills the registries once.

Configuration, in order of precedence: the arguments of :func:`configure` (the CLI options
``--plugins-dir``, ``--disable-plugin``, ``--strict-plugins``), then the environment:

- ``FEWSHOTKIT_PLUGINS_DIR``: a directory of loose ``*.py`` plugin files (``os.pathsep``-separated);
- ``FEWSHOTKIT_DISABLE_PLUGINS``: comma-separated plugin names not to load;
- ``FEWSHOTKIT_STRICT_PLUGINS=1``: a plugin that fails to load raises instead of being skipped.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

import pluggy

from fewshotkit import hookspecs
from fewshotkit.errors import PluginError
from fewshotkit.registry import Registry

ENTRY_POINT_GROUP = "fewshotkit"
HOOK_TO_KIND = {
    "register_backbones": "backbone",
    "register_pseudolabelers": "pseudolabeler",
    "register_poolers": "pooler",
    "register_classifiers": "classifier",
    "register_methods": "method",
    "register_postprocessors": "postprocessor",
}


@dataclass
class PluginInfo:
    name: str
    source: str  # "entry-point" or "file"
    module: str
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    components: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "module": self.module,
            "version": self.version,
            "hooks": self.hooks,
            "components": self.components,
            "error": self.error,
        }


class PluginHost:
    """A pluggy PluginManager plus the registries it fills and a record of every plugin."""

    def __init__(
        self,
        plugins_dirs: Iterable[str | os.PathLike] = (),
        disabled: Iterable[str] = (),
        strict: bool = False,
        load_entry_points: bool = True,
    ) -> None:
        self.pm = pluggy.PluginManager("fewshotkit")
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict
        self.disabled = set(disabled)
        for name in self.disabled:
            self.pm.set_blocked(name)
        self.plugins: dict[str, PluginInfo] = {}
        self.registry = Registry()
        if load_entry_points:
            self._load_entry_points()
        for directory in plugins_dirs:
            self._load_directory(Path(directory))
        self._fill_registries()

    # -- loading -----------------------------------------------------------------------------
    def _fail(self, info: PluginInfo, exc: BaseException) -> None:
        info.error = f"{type(exc).__name__}: {exc}"
        self.plugins[info.name] = info
        if self.strict:
            raise PluginError(f"plugin '{info.name}' ({info.module}) failed to load: {info.error}") from exc
        warnings.warn(
            f"fewshotkit: skipped plugin '{info.name}' ({info.module}): {info.error}",
            RuntimeWarning,
            stacklevel=3,
        )
        if os.environ.get("FEWSHOTKIT_DEBUG"):
            traceback.print_exception(exc)

    def _register(self, module: ModuleType, info: PluginInfo) -> None:
        if info.name in self.plugins or self.pm.has_plugin(info.name):
            self._fail(info, PluginError(f"a plugin named '{info.name}' is already loaded"))
            return
        try:
            self.pm.register(module, name=info.name)
            self.pm.check_pending()  # a hookimpl matching no hookspec, e.g. a typo
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            self._fail(info, exc)
            return
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])
        self.plugins[info.name] = info

    def _load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in self.disabled:
                continue
            version = ep.dist.version if ep.dist is not None else None
            info = PluginInfo(ep.name, "entry-point", ep.value, version)
            try:
                module = ep.load()
            except Exception as exc:  # one broken plugin must not break the CLI
                self._fail(info, exc)
                continue
            self._register(module, info)

    def _load_directory(self, directory: Path) -> None:
        if not directory.is_dir():
            raise PluginError(f"plugins directory '{directory}' does not exist or is not a directory")
        for path in sorted(directory.glob("*.py")):
            name = path.stem
            if name.startswith("_") or name in self.disabled:
                continue
            info = PluginInfo(name, "file", str(path))
            try:
                spec = importlib.util.spec_from_file_location(f"fewshotkit_plugins_dir.{name}", path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(f"fewshotkit_plugins_dir.{name}", None)
                self._fail(info, exc)
                continue
            info.version = getattr(module, "__version__", None)
            self._register(module, info)

    # -- registries --------------------------------------------------------------------------
    def _fill_registries(self) -> None:
        for hook_name, kind in HOOK_TO_KIND.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                plugin_name = self.pm.get_name(impl.plugin)
                info = self.plugins[plugin_name]

                def register(name: str, factory: Any, description: str = "", *, _kind=kind, _plugin=plugin_name):
                    self.registry.add(_kind, name, factory, _plugin, description)
                    self.plugins[_plugin].components.setdefault(_kind, []).append(name)

                try:
                    impl.function(register=register)
                except PluginError:
                    raise  # duplicates are always errors: never run a different 'alp' than asked for
                except Exception as exc:
                    self._fail(info, exc)

    def add_commands(self, cli: Any) -> None:
        """Let plugins add click commands to ``cli``."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            name = self.pm.get_name(impl.plugin)
            try:
                impl.function(cli=cli)
            except Exception as exc:
                self._fail(self.plugins[name], exc)

    def versions(self) -> dict[str, str | None]:
        """Plugin name -> version, for recording with checkpoints and results."""
        return {name: info.version for name, info in sorted(self.plugins.items()) if info.error is None}


_host: PluginHost | None = None
_settings: dict[str, Any] = {}


def configure(plugins_dirs: Iterable[str] = (), disabled: Iterable[str] = (), strict: bool | None = None) -> None:
    """Set how the host loads plugins; must be called before the first :func:`get_host`."""
    global _host
    _host = None
    _settings.update(plugins_dirs=tuple(plugins_dirs), disabled=tuple(disabled), strict=strict)


def get_host() -> PluginHost:
    """The process-wide plugin host, created on first use."""
    global _host
    if _host is None:
        env_dirs = [d for d in os.environ.get("FEWSHOTKIT_PLUGINS_DIR", "").split(os.pathsep) if d]
        env_disabled = [d.strip() for d in os.environ.get("FEWSHOTKIT_DISABLE_PLUGINS", "").split(",") if d.strip()]
        strict = _settings.get("strict")
        if strict is None:
            strict = os.environ.get("FEWSHOTKIT_STRICT_PLUGINS", "") not in ("", "0", "false")
        _host = PluginHost(
            plugins_dirs=list(_settings.get("plugins_dirs", ())) + env_dirs,
            disabled=list(_settings.get("disabled", ())) + env_disabled,
            strict=strict,
        )
    return _host


def get_registry() -> Registry:
    return get_host().registry


def reset() -> None:
    """Forget the host and its settings (tests)."""
    global _host
    _host = None
    _settings.clear()
