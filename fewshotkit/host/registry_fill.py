"""Filling the component registry from the plugins' ``register_*`` hooks.

A plugin's components are first collected and checked (staged), and enter the registry only after
all its register hooks succeeded: a plugin failing in any hook leaves no component and takes part in
no conflict. Two plugins registering one name (or alias) of one kind is a *conflict*: the earlier
plugin keeps the name and the conflict is recorded, never resolved silently.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import pluggy

from fewshotkit.core.errors import PluginError
from fewshotkit.host.plugin_loading import PluginInfo
from fewshotkit.host.registry import Registry

HOOK_TO_KIND = {
    "register_backbones": "backbone",
    "register_pseudolabelers": "pseudolabeler",
    "register_poolers": "pooler",
    "register_classifiers": "classifier",
    "register_methods": "method",
    "register_postprocessors": "postprocessor",
}

#: (kind, (name, *aliases), factory, description): one component a register hook gave
Staged = tuple[str, tuple[str, ...], Any, str]


def fill_registries(pm: pluggy.PluginManager, plugins: dict[str, PluginInfo], registry: Registry,
                    conflicts: list[str]) -> Iterator[tuple[PluginInfo, Exception]]:
    """Run the register hooks of each plugin registered with ``pm``, in the order of ``plugins`` (the
    core's first), and add their components to ``registry``; each name an earlier plugin holds adds
    a message to ``conflicts``. A plugin whose hooks raise is unregistered and yielded with its error,
    for the caller to record as a failed plugin before the next plugin runs; a generator, so nothing
    is filled until the caller iterates it to the end."""
    for name in [n for n in plugins if pm.get_plugin(n) is not None]:
        info, module = plugins[name], pm.get_plugin(name)
        try:
            staged = _collect(pm, registry, module, name)
        except Exception as exc:
            pm.unregister(module)
            yield info, exc
            continue
        for component in staged:
            _add(registry, conflicts, info, component)


def _collect(pm: pluggy.PluginManager, registry: Registry, module: Any, plugin: str) -> list[Staged]:
    """Every component the register hooks of ``plugin`` give, checked but not yet registered; a name
    the plugin gives twice is a :class:`PluginError`."""
    staged: list[Staged] = []
    for hook_name, kind in HOOK_TO_KIND.items():
        own: set[str] = set()

        def register(name: str, factory: Any, description: str = "", *, aliases: Iterable[str] = (),
                     _kind: str = kind, _own: set[str] = own) -> None:
            names = registry.validate_names(_kind, name, aliases, plugin)
            registry.check_factory(_kind, name, factory, plugin)
            again = next((n for n in names if n in _own), None)
            if again is not None:
                raise PluginError(f"plugin '{plugin}' registers {_kind} '{again}' twice (as a name or an "
                                  "alias): register each name once")
            _own.update(names)
            staged.append((_kind, names, factory, description))

        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin is module:
                impl.function(register=register)
    return staged


def _add(registry: Registry, conflicts: list[str], info: PluginInfo, component: Staged) -> None:
    """Register one staged component of plugin ``info``; each of its names an earlier plugin holds
    is a conflict, recorded in ``conflicts`` and ``info.conflicts``."""
    kind, names, factory, description = component
    taken = [n for n in names if registry.has(kind, n)]
    for n in taken:
        conflicts.append(registry.duplicate_message(kind, n, info.name))
        info.conflicts.append(f"{kind} '{n}' (also in '{registry.get(kind, n).plugin}')")
    if names[0] not in taken:
        registry.add(kind, names[0], factory, info.name, description,
                     aliases=[a for a in names[1:] if a not in taken])
        info.components.setdefault(kind, []).append(names[0])
