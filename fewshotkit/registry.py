"""Component registries: name -> factory, per kind, filled by plugins at start-up."""

from __future__ import annotations

import builtins
import fnmatch
import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from fewshotkit.errors import FewshotkitError, PluginError, UnknownComponentError
from fewshotkit.userinput import did_you_mean

KINDS: tuple[str, ...] = ("backbone", "pseudolabeler", "pooler", "classifier", "method", "postprocessor")

Factory = Union[Callable[..., Any], str]
_INHERITED_INITS = ("object.__init__", "Module.__init__")
#: attribute set on every built component: (kind, name, plugin), so run-time errors can name it
PROVENANCE = "_fewshotkit_component"
#: how an unknown name may be explained: its plugin is not loaded
PLUGIN_HINT = "Is the plugin that provides '{name}' installed, or loaded with --plugins-dir?"
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Options|Keyword [Aa]rgs|Keyword [Aa]rguments):\s*$")
_GOOGLE_ITEM = re.compile(r"^(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_ITEM = re.compile(r"^:param\s+(?:[\w\[\], |]+\s+)?(\w+):\s*(.*)$")
_INLINE_ITEM = re.compile(r"^(?:[-*]\s+)?``(\w+)``\s*:\s*(.*)$")


@dataclass(frozen=True)
class OptionInfo:
    """One keyword option of a component: from the factory's signature and docstring."""

    name: str
    default: Any  # inspect.Parameter.empty when required
    type: str  # the annotation as written ("" when there is none)
    description: str  # first line of its docstring entry ("" when undocumented)

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def to_json(self) -> dict[str, Any]:
        default = None if self.required else self.default
        if not isinstance(default, (str, int, float, bool, type(None), list, tuple, dict)):
            default = repr(default)
        return {"name": self.name, "default": default, "required": self.required, "type": self.type,
                "description": self.description}


def _doc_entries(doc: str) -> dict[str, str]:
    """Option name -> one-line description, from Google (``Args:``), Sphinx (``:param x:``) or
    ``- ``x``: ...`` entries of a docstring."""
    entries: dict[str, str] = {}
    in_section = False
    section_indent = 0
    for raw in doc.splitlines():
        line = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        if _SECTION.match(line):
            in_section, section_indent = True, indent
            continue
        if in_section and line and indent <= section_indent:
            in_section = False
        for pattern, active in ((_GOOGLE_ITEM, in_section), (_SPHINX_ITEM, True), (_INLINE_ITEM, True)):
            match = pattern.match(line) if active else None
            if match and match.group(1) not in entries:
                entries[match.group(1)] = match.group(2).strip()
                break
    return entries


def _annotation(param: inspect.Parameter) -> str:
    annotation = param.annotation
    if annotation is inspect.Parameter.empty:
        return "" if param.default in (inspect.Parameter.empty, None) else type(param.default).__name__
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


@dataclass
class Component:
    """One registered component: a named factory of a given kind, owned by a plugin."""

    kind: str
    name: str
    factory: Factory
    plugin: str
    description: str = ""
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
        described = _doc_entries(self.docstring())
        return [
            OptionInfo(name, p.default, _annotation(p), described.get(name, ""))
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
    """All components of all kinds. Names are unique per kind."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}

    def has(self, kind: str, name: str) -> bool:
        return name in self._components.get(kind, {})

    def add(self, kind: str, name: str, factory: Factory, plugin: str, description: str = "") -> None:
        if kind not in self._components:
            raise PluginError(f"plugin '{plugin}': unknown component kind '{kind}'")
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{plugin}': {kind} names must be non-empty strings, got {name!r}")
        if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
            raise PluginError(
                f"plugin '{plugin}': {kind} '{name}' needs a callable or a 'module:attr' factory"
            )
        existing = self._components[kind].get(name)
        if existing is not None:
            raise PluginError(
                f"{kind} '{name}' is registered twice: by plugin '{existing.plugin}' and by plugin "
                f"'{plugin}'. Disable one of them (--disable-plugin NAME)."
            )
        self._components[kind][name] = Component(kind, name, factory, plugin, description)

    def get(self, kind: str, name: str) -> Component:
        """The component, or an error with close-match suggestions."""
        if kind not in self._components:
            raise FewshotkitError(f"unknown component kind '{kind}'; kinds: {', '.join(KINDS)}")
        try:
            return self._components[kind][name]
        except KeyError:
            known = sorted(self._components[kind])
            listing = ", ".join(known) or "none registered"
            error = UnknownComponentError(
                f"unknown {kind} '{name}'.{did_you_mean(name, known, n=3)} Known: {listing}. "
                + PLUGIN_HINT.format(name=name)
            )
            error.kind, error.name = kind, name
            raise error from None

    def create(self, kind: str, name: str, **options: Any) -> Any:
        return self.get(kind, name).create(**options)

    def list(self, kind: str | None = None, pattern: str | None = None) -> list[Component]:
        """Components sorted by kind then name, optionally filtered by a shell wildcard."""
        kinds = KINDS if kind is None else (kind,)
        out = []
        for k in kinds:
            if k not in self._components:
                raise FewshotkitError(f"unknown component kind '{k}'; kinds: {', '.join(KINDS)}")
            for name in sorted(self._components[k]):
                if pattern is None or fnmatch.fnmatchcase(name, pattern):
                    out.append(self._components[k][name])
        return out

    def names(self, kind: str) -> builtins.list[str]:
        return sorted(self._components[kind])

    def remove_plugin(self, plugin: str) -> None:
        """Forget every component of ``plugin`` (its registration failed half-way)."""
        for by_name in self._components.values():
            for name in [n for n, c in by_name.items() if c.plugin == plugin]:
                del by_name[name]
