"""The plugin host: loads plugins (entry points and loose files), fills the registries once.

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
a loose file's is the hash of the file; an installed plugin's is its version, plus a hash of its
module files when its code may change without the version: an editable (development) install, code
outside any site-packages directory (a source checkout), or a ``.dev`` version.

Loading, isolating failures, configuration and the registry fill live in one module because they
share one state (the loaded plugins and their errors), which ``fewshotkit plugins`` reports as a whole.
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

from fewshotkit.core.version import __version__

from fewshotkit.host import core_components

from fewshotkit.host import hookspecs
from fewshotkit.host.core_components import CORE
from fewshotkit.core.errors import FewshotkitError, PluginError, UnknownComponentError
from fewshotkit.host.provenance import is_editable, missing_plugin_hint, module_files, source_hash
from fewshotkit.host.registry import Registry
from fewshotkit.core.userinput import did_you_mean

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
        if CORE in self.disabled:
            raise PluginError(f"'{CORE}' is fewshotkit's own core, not a plugin: it cannot be disabled")
        for name in self.disabled:
            self.pm.set_blocked(name)
        self.plugins: dict[str, PluginInfo] = {}
        self.conflicts: list[str] = []  # one message per name registered twice
        self.registry = Registry()
        self._seen: set[str] = set()  # every plugin name found, disabled ones included
        self._fingerprints: dict[str, str | None] = {}
        self._register(core_components, PluginInfo(CORE, "core", core_components.__name__, __version__))
        self._command_owners: dict[str, str] = {}  # CLI command name -> the plugin that added it
        if load_entry_points:
            self._load_entry_points()
        for directory in plugins_dirs:
            self._load_directory(Path(directory))
        if load_entry_points:
            self._warn_unknown_disabled()
        self._fill_registries()

    # -- loading -----------------------------------------------------------------------------
    def _fail(self, info: PluginInfo, exc: BaseException) -> None:
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

    # -- registries --------------------------------------------------------------------------
    def _fill_registries(self) -> None:
        """Run each plugin's register hooks, the core's first. A plugin's components enter the
        registries only after all its hooks succeeded, so a plugin failing in any hook leaves none,
        takes part in no conflict, and is unregistered (its commands are not added either)."""
        for name in [n for n in self.plugins if self.pm.get_plugin(n) is not None]:
            info, module = self.plugins[name], self.pm.get_plugin(name)
            try:
                staged = self._collect(module, name)
            except Exception as exc:
                self.pm.unregister(module)
                self._fail(info, exc)
                continue
            for kind, names, factory, description in staged:
                self._add(info, kind, names, factory, description)

    def _collect(self, module: Any, plugin: str) -> list[tuple[str, tuple[str, ...], Any, str]]:
        """Every (kind, (name, *aliases), factory, description) the register hooks of ``plugin``
        give, checked but not yet registered; a name the plugin gives twice is a :class:`PluginError`."""
        staged: list[tuple[str, tuple[str, ...], Any, str]] = []
        for hook_name, kind in HOOK_TO_KIND.items():
            own: set[str] = set()

            def register(name: str, factory: Any, description: str = "", *, aliases: Iterable[str] = (),
                         _kind: str = kind, _own: set[str] = own) -> None:
                names = self.registry.validate_names(_kind, name, aliases, plugin)
                self.registry.check_factory(_kind, name, factory, plugin)
                again = next((n for n in names if n in _own), None)
                if again is not None:
                    raise PluginError(f"plugin '{plugin}' registers {_kind} '{again}' twice (as a name or an "
                                      "alias): register each name once")
                _own.update(names)
                staged.append((_kind, names, factory, description))

            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin is module:
                    impl.function(register=register)
        return staged

    def _add(self, info: PluginInfo, kind: str, names: tuple[str, ...], factory: Any, description: str) -> None:
        """Register one staged component; a name or alias held by an earlier plugin is a conflict:
        recorded, and :func:`get_registry` refuses to hand out the registry."""
        taken = [n for n in names if self.registry.has(kind, n)]
        for n in taken:
            self.conflicts.append(self.registry.duplicate_message(kind, n, info.name))
            info.conflicts.append(f"{kind} '{n}' (also in '{self.registry.get(kind, n).plugin}')")
        if names[0] not in taken:
            self.registry.add(kind, names[0], factory, info.name, description,
                              aliases=[a for a in names[1:] if a not in taken])
            info.components.setdefault(kind, []).append(names[0])

    def add_commands(self, cli: Any, reserved: Iterable[str] = ()) -> None:
        """Let plugins add click commands to the group ``cli``.

        A command named like one of ``reserved`` (the built-in commands) or like one an earlier
        plugin added is left out, with a warning, and listed among its plugin's conflicts. A plugin
        whose hook raises adds no command and, like any failed plugin, keeps no component.
        """
        for impl in self.pm.hook.register_commands.get_hookimpls():
            name = str(self.pm.get_name(impl.plugin))
            before = dict(cli.commands)
            try:
                impl.function(cli=cli)
            except Exception as exc:
                cli.commands.clear()
                cli.commands.update(before)
                self.registry.remove_plugin(name)
                self.plugins[name].components = {}
                self._fail(self.plugins[name], exc)
                continue
            self._keep_own_commands(cli, before, set(reserved), name)

    def _keep_own_commands(self, cli: Any, before: dict[str, Any], reserved: set[str], plugin: str) -> None:
        """Undo what ``plugin`` did to ``cli.commands`` over a built-in or an earlier plugin's command."""
        for command, obj in list(cli.commands.items()):
            if before.get(command) is obj:
                continue
            if command not in reserved and command not in before:
                self._command_owners[command] = plugin
                continue
            if command in before:
                cli.commands[command] = before[command]
            else:
                del cli.commands[command]
            owner = CORE if command in reserved else self._command_owners.get(command, "another plugin")
            self.plugins[plugin].conflicts.append(f"command '{command}' (also in '{owner}')")
            warnings.warn(f"fewshotkit: plugin '{plugin}' adds the command '{command}', which '{owner}' already "
                          "has: it was left out; rename it in the plugin", RuntimeWarning, stacklevel=2)

    def versions(self) -> dict[str, str | None]:
        """Plugin name -> version (the core left out), for recording with checkpoints and results."""
        return {name: info.version for name, info in sorted(self.plugins.items())
                if info.error is None and info.source != "core"}

    def fingerprint(self, name: str) -> str | None:
        """What identifies the code of plugin ``name`` (see the module docstring): ``"1.0"``,
        ``"1.0+sha256:<hex>"`` (editable/dev installs) or ``"sha256:<hex>"`` (a loose file)."""
        if name not in self._fingerprints:
            info = self.plugins[name]
            version = info.version
            hashed = info.source == "file" or info.editable or (version is not None and "dev" in version)
            if hashed and info.files is not None and info.files.exists():
                digest = f"sha256:{source_hash(info.files)}"
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
