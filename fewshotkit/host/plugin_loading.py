"""Loading plugins: the entry points of the group ``fewshotkit`` and loose ``*.py`` files from folders.

A plugin that fails to load (its import raises or exits, its name is taken, one of its hooks matches
no hook specification) is recorded with its error and skipped with a warning, or raises
:class:`PluginError` in strict mode: one broken plugin never breaks the CLI.
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

from fewshotkit.core.errors import PluginError
from fewshotkit.core.userinput import did_you_mean
from fewshotkit.host import hookspecs
from fewshotkit.host.core_components import CORE
from fewshotkit.host.provenance import is_editable, module_files

ENTRY_POINT_GROUP = "fewshotkit"


@dataclass
class PluginInfo:
    """The record of one plugin: where it comes from, what it registered and, if it failed, why."""

    name: str
    source: str  # "entry-point", "file" or "core"
    module: str
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    components: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    conflicts: list[str] = field(default_factory=list)  # names another plugin registered first
    files: Path | None = None  # the loaded module's file, or its package directory
    editable: bool = False  # an entry point installed in development (editable) mode

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "module": self.module,
            "version": self.version,
            "hooks": self.hooks,
            "components": self.components,
            "error": self.error,
            "conflicts": self.conflicts,
        }


class PluginLoader:
    """A pluggy PluginManager and a record of every plugin found: loaded, or failed with its error."""

    def __init__(self, disabled: Iterable[str] = (), strict: bool = False) -> None:
        self.pm = pluggy.PluginManager("fewshotkit")
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict
        self.disabled = set(disabled)
        if CORE in self.disabled:
            raise PluginError(f"'{CORE}' is fewshotkit's own core, not a plugin: it cannot be disabled")
        for name in self.disabled:
            self.pm.set_blocked(name)
        self.plugins: dict[str, PluginInfo] = {}
        self._seen: set[str] = set()  # every plugin name found, disabled ones included

    def _fail(self, info: PluginInfo, exc: BaseException) -> None:
        """Record that plugin ``info`` failed with ``exc``: a warning, or a :class:`PluginError` when strict."""
        info.error = f"{type(exc).__name__}: {exc}"
        key = info.name
        if self.plugins.get(key, info) is not info:  # never replace the record of a loaded namesake
            key = f"{info.name} ({info.module})"
        self.plugins[key] = info
        if self.strict:
            raise PluginError(f"plugin '{info.name}' ({info.module}) failed to load: {info.error}") from exc
        warnings.warn(
            f"fewshotkit: skipped plugin '{info.name}' ({info.module}): {info.error}",
            RuntimeWarning,
            stacklevel=3,
        )
        if os.environ.get("FEWSHOTKIT_DEBUG"):
            traceback.print_exception(exc)

    def _name_taken(self, name: str) -> PluginError | None:
        """Why a plugin may not be named ``name``, or None when it may."""
        if name == CORE and CORE in self.plugins:
            return PluginError(f"'{CORE}' is already loaded: it is fewshotkit's own core; rename the plugin")
        if name in self.plugins or self.pm.has_plugin(name):
            where = self.plugins[name].module if name in self.plugins else "another plugin"
            return PluginError(f"a plugin named '{name}' is already loaded (from {where}): rename or disable "
                               "one of them (--disable-plugin NAME)")
        return None

    def _register(self, module: ModuleType, info: PluginInfo) -> None:
        """Register ``module`` with the plugin manager as plugin ``info``, or record why it cannot be."""
        taken = self._name_taken(info.name)
        if taken is not None:
            self._fail(info, taken)
            return
        other = self.pm.get_name(module)
        if other is not None:  # pluggy refuses one module under two names
            self._fail(info, PluginError(f"module '{info.module}' is already loaded as plugin '{other}': "
                                         "remove one of its two entry points"))
            return
        try:
            self.pm.register(module, name=info.name)
            self.pm.check_pending()  # a hookimpl matching no hookspec, e.g. a typo
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            self._fail(info, self._explain_invalid(module, exc))
            return
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])
        info.files = module_files(module)
        self.plugins[info.name] = info

    def _explain_invalid(self, module: ModuleType, exc: pluggy.PluginValidationError) -> Exception:
        """A misspelt hook name gets the close hook names; other validation errors pass through."""
        known = [n for n in dir(hookspecs) if getattr(getattr(hookspecs, n), "fewshotkit_spec", None) is not None]
        for attr in dir(module):
            if getattr(getattr(module, attr, None), "fewshotkit_impl", None) is not None and attr not in known:
                return PluginError(
                    f"unknown hook '{attr}'.{did_you_mean(attr, known)} Hooks: {', '.join(sorted(known))}"
                )
        return exc

    def _load_entry_points(self) -> None:
        """Load the plugins installed under the entry-point group, sorted by name."""
        seen: set[tuple[str, str]] = set()
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            self._seen.add(ep.name)
            if ep.name in self.disabled or (ep.name, ep.value) in seen:
                continue  # one distribution's metadata found twice on sys.path is one plugin
            seen.add((ep.name, ep.value))
            version = ep.dist.version if ep.dist is not None else None
            info = PluginInfo(ep.name, "entry-point", ep.value, version)
            try:
                module = ep.load()
            except (Exception, SystemExit) as exc:  # one broken plugin must not break the CLI
                self._fail(info, exc)
                continue
            info.editable = is_editable(ep.dist, module_files(module))
            self._register(module, info)

    def _load_directory(self, directory: Path) -> None:
        """Load each ``*.py`` file of ``directory`` (sorted; names starting with ``_`` left out) as a plugin."""
        if not directory.is_dir():
            raise PluginError(f"plugins directory '{directory}' does not exist or is not a directory: give a "
                              "folder of *.py plugin files")
        for path in sorted(directory.glob("*.py")):
            name = path.stem
            self._seen.add(name)
            if name.startswith("_") or name in self.disabled:
                continue
            info = PluginInfo(name, "file", str(path))
            taken = self._name_taken(name)
            if taken is not None:  # checked before its code runs or replaces the namesake's module
                self._fail(info, taken)
                continue
            module = self._exec_file(path, info)
            if module is not None:
                info.version = getattr(module, "__version__", None)
                self._register(module, info)
                if self.plugins.get(name) is not info:
                    sys.modules.pop(module.__name__, None)

    def _exec_file(self, path: Path, info: PluginInfo) -> ModuleType | None:
        """The module of the loose plugin file ``path``, or None when its code fails (recorded)."""
        module_name = f"fewshotkit_plugins_dir.{info.name}"
        try:
            spec = importlib.util.spec_from_file_location(module_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(module_name, None)
            self._fail(info, exc)
            return None
        return module

    def _warn_unknown_disabled(self) -> None:
        """A disabled name no plugin has is most likely misspelt: say so, since nothing else would."""
        for name in sorted(self.disabled - self._seen):
            warnings.warn(
                f"fewshotkit: --disable-plugin / FEWSHOTKIT_DISABLE_PLUGINS names '{name}', which no installed "
                f"plugin is called.{did_you_mean(name, self._seen)} Plugins: {', '.join(sorted(self._seen)) or 'none'}",
                RuntimeWarning,
                stacklevel=3,
            )
