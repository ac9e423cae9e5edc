"""Component registries: name -> factory, per kind, filled by plugins at start-up.

A component may have *aliases*: other names of the same kind that resolve to it (method ``alpnet``
-> ``composed``). Names and aliases share one namespace per kind, so each resolves to one component.
"""

from __future__ import annotations

import builtins
import fnmatch
import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Union

from fewshotkit.core.errors import FewshotkitError, PluginError, UnknownComponentError
from fewshotkit.core.userinput import did_you_mean
from fewshotkit.host.option_docs import OptionInfo, annotation_text, doc_entries

KINDS: tuple[str, ...] = ("backbone", "pseudolabeler", "pooler", "classifier", "method", "postprocessor")

Factory = Union[Callable[..., Any], str]
_INHERITED_INITS = ("object.__init__", "Module.__init__")
#: attribute set on every built component: (kind, name, plugin), so run-time errors can name it
PROVENANCE = "_fewshotkit_component"
#: how an unknown name may be explained: its plugin is not loaded
PLUGIN_HINT = "Is the plugin that provides '{name}' installed, or loaded with --plugins-dir?"
#: a component name or alias: it becomes file names, HDF5 groups and command-line words
NAME_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")


@dataclass
class Component:
    """One registered component: a named factory of a given kind, owned by a plugin."""

    kind: str
    name: str
    factory: Factory
    plugin: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    _resolved: Callable[..., Any] | None = field(default=None, repr=False)

    def load(self) -> Callable[..., Any]:
        """The factory itself, importing a lazy ``"module:attr"`` reference on first use."""
        if self._resolved is None:
            if callable(self.factory):
                self._resolved = self.factory
            else:
                module_name, _, attr = str(self.factory).partition(":")
                try:
                    obj: Any = importlib.import_module(module_name)
                    for part in attr.split("."):
                        obj = getattr(obj, part)
                except (ImportError, AttributeError) as exc:
                    raise PluginError(
                        f"{self.kind} '{self.name}' of plugin '{self.plugin}': cannot import "
                        f"'{self.factory}': {exc}"
                    ) from exc
                self._resolved = obj
        return self._resolved

    def _parameters(self) -> dict[str, inspect.Parameter]:
        factory = self.load()
        init = getattr(factory, "__init__", None)
        if inspect.isclass(factory) and getattr(init, "__qualname__", "") in _INHERITED_INITS:
            return {}  # a class without its own __init__ (e.g. a bare nn.Module) takes no options
        return dict(inspect.signature(factory).parameters)

    def options(self) -> dict[str, Any]:
        """Keyword options of the factory with their defaults (``inspect.Parameter.empty`` if required)."""
        params = self._parameters()
        return {
            name: p.default
            for name, p in params.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    def docstring(self) -> str:
        """The factory's docstring (a class's own, then its ``__init__``'s), dedented."""
        factory = self.load()
        docs = [inspect.getdoc(factory) or ""]
        init = getattr(factory, "__init__", None)
        if inspect.isclass(factory) and init is not None and getattr(init, "__qualname__", "") not in _INHERITED_INITS:
            docs.append(inspect.getdoc(init) or "")
        return "\n\n".join(d for d in docs if d)

    def summary(self) -> str:
        """The registered description, else the docstring's first line."""
        if self.description:
            return self.description
        return next((line.strip() for line in self.docstring().splitlines() if line.strip()), "")

    def option_info(self) -> list[OptionInfo]:
        """Every keyword option with its default, annotation and docstring line, in signature order."""
        params = self._parameters()
        described = doc_entries(self.docstring())
        return [
            OptionInfo(name, p.default, annotation_text(p), described.get(name, ""))
            for name, p in params.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]

    def check_options(self, options: dict[str, Any], *, prefix: str = "") -> None:
        """Raise a :class:`FewshotkitError` naming the valid options if any key is unknown."""
        params = self._parameters()
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        valid = self.options()
        for key in options:
            if key not in valid:
                listing = ", ".join(sorted(valid)) or "(none)"
                raise FewshotkitError(
                    f"unknown option '{prefix}{key}' for {self.kind} '{self.name}'."
                    f"{did_you_mean(key, valid, prefix=prefix)} Valid options: {listing} "
                    f"(see: fewshotkit components {self.kind} {self.name})"
                )

    def create(self, **options: Any) -> Any:
        """Build the component; None-valued options are dropped so callers can pass every flag.

        The result carries its origin in the attribute ``_fewshotkit_component`` = (kind, name,
        plugin), which run-time contract checks use to name a misbehaving component.
        """
        options = {k: v for k, v in options.items() if v is not None}
        self.check_options(options)
        built = self.load()(**options)
        try:
            setattr(built, PROVENANCE, (self.kind, self.name, self.plugin))
        except (AttributeError, TypeError):  # e.g. a factory returning a builtin or slotted object
            pass
        return built

    def label(self) -> str:
        return f"{self.kind} '{self.name}' (plugin '{self.plugin}')"


def describe(obj: Any, fallback: str) -> str:
    """``pooler 'alp' (plugin 'alp')`` for a registry-built object, else ``fallback`` + its class."""
    origin = getattr(obj, PROVENANCE, None)
    if origin is not None:
        kind, name, plugin = origin
        return f"{kind} '{name}' (plugin '{plugin}')"
    return f"{fallback} {type(obj).__name__}"


class Registry:
    """All components of all kinds. Names and aliases are unique per kind."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._aliases: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}  # alias -> name

    def has(self, kind: str, name: str) -> bool:
        """Whether ``name`` is a registered name or alias of ``kind``."""
        return name in self._components.get(kind, {}) or name in self._aliases.get(kind, {})

    def validate_names(self, kind: str, name: Any, aliases: Any, plugin: str) -> tuple[str, ...]:
        """``(name, *aliases)`` after checking their form (not whether they are taken)."""
        if kind not in self._components:
            raise PluginError(f"plugin '{plugin}': unknown component kind '{kind}'")
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{plugin}': {kind} names must be non-empty strings, got {name!r}")
        if isinstance(aliases, str) or not all(isinstance(a, str) and a for a in aliases):
            raise PluginError(f"plugin '{plugin}': {kind} '{name}': aliases must be a list of non-empty "
                              f"strings, got {aliases!r}")
        names = (name, *aliases)
        bad = next((n for n in names if not NAME_PATTERN.fullmatch(n) or ".." in n), None)
        if bad is not None:
            raise PluginError(f"plugin '{plugin}': {kind} name {bad!r} is not allowed: names become file names and "
                              "store groups, so use letters, digits, '.', '_' and '-' only, starting and ending "
                              "with a letter or digit (at most 64 characters, no '..')")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise PluginError(f"plugin '{plugin}': {kind} '{name}' lists '{repeated[0]}' twice (as its name "
                              "or an alias)")
        return names

    @staticmethod
    def check_factory(kind: str, name: str, factory: Any, plugin: str) -> None:
        """A :class:`PluginError` unless ``factory`` is a callable or a ``"module:attr"`` string."""
        if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
            raise PluginError(f"plugin '{plugin}': {kind} '{name}' needs a callable or a 'module:attr' factory, "
                              f"got {factory!r}")

    def duplicate_message(self, kind: str, name: str, plugin: str) -> str:
        """Why ``plugin`` may not register ``name``: the component that already holds it."""
        first = self.get(kind, name)
        held = f"as an alias of {kind} '{first.name}' " if name != first.name else ""
        return (f"{kind} '{name}' is registered twice: {held}by plugin '{first.plugin}' and by plugin "
                f"'{plugin}'. Disable one of them (--disable-plugin NAME).")

    def add(self, kind: str, name: str, factory: Factory, plugin: str, description: str = "",
            aliases: Iterable[str] = ()) -> None:
        """Register a component under ``name`` and its ``aliases``; a name or alias already taken
        (by a name or an alias) is a :class:`PluginError`."""
        names = self.validate_names(kind, name, aliases if isinstance(aliases, str) else tuple(aliases), plugin)
        self.check_factory(kind, name, factory, plugin)
        taken = next((n for n in names if self.has(kind, n)), None)
        if taken is not None:
            raise PluginError(self.duplicate_message(kind, taken, plugin))
        self._components[kind][name] = Component(kind, name, factory, plugin, description, names[1:])
        self._aliases[kind].update(dict.fromkeys(names[1:], name))

    def get(self, kind: str, name: str) -> Component:
        """The component ``name`` (a name or an alias) stands for, or an error with close matches
        among names and aliases."""
        if kind not in self._components:
            raise FewshotkitError(f"unknown component kind '{kind}'; kinds: {', '.join(KINDS)}")
        component = self._components[kind].get(self._aliases[kind].get(name, name))
        if component is None:
            known = [*self._components[kind], *self._aliases[kind]]
            listing = ", ".join(sorted(self._components[kind])) or "none registered"
            error = UnknownComponentError(
                f"unknown {kind} '{name}'.{did_you_mean(name, known, n=3)} Known: {listing}. "
                + PLUGIN_HINT.format(name=name)
            )
            error.kind, error.name = kind, name
            raise error
        return component

    def create(self, kind: str, name: str, **options: Any) -> Any:
        return self.get(kind, name).create(**options)

    def list(self, kind: str | None = None, pattern: str | None = None) -> list[Component]:
        """Components sorted by kind then name, each once; ``pattern`` (a shell wildcard) keeps
        those whose name or an alias matches."""
        kinds = KINDS if kind is None else (kind,)
        out = []
        for k in kinds:
            if k not in self._components:
                raise FewshotkitError(f"unknown component kind '{k}'; kinds: {', '.join(KINDS)}")
            for name in sorted(self._components[k]):
                component = self._components[k][name]
                if pattern is None or any(fnmatch.fnmatchcase(n, pattern) for n in (name, *component.aliases)):
                    out.append(component)
        return out

    def names(self, kind: str) -> builtins.list[str]:
        """The registered names of ``kind`` (not their aliases)."""
        return sorted(self._components[kind])

    def remove_plugin(self, plugin: str) -> None:
        """Forget every component of ``plugin``, aliases included (its registration failed half-way)."""
        for kind, by_name in self._components.items():
            for name in [n for n, c in by_name.items() if c.plugin == plugin]:
                for alias in by_name.pop(name).aliases:
                    del self._aliases[kind][alias]
