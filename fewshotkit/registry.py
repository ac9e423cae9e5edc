"""Component registries: name -> factory, per kind, filled by plugins at start-up."""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from fewshotkit.errors import FewshotkitError, PluginError, UnknownComponentError

KINDS: tuple[str, ...] = ("backbone", "pseudolabeler", "pooler", "classifier", "method", "postprocessor")

Factory = Union[Callable[..., Any], str]
_INHERITED_INITS = ("object.__init__", "Module.__init__")


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

    def check_options(self, options: dict[str, Any], *, prefix: str = "") -> None:
        """Raise a :class:`FewshotkitError` naming the valid options if any key is unknown."""
        params = self._parameters()
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        valid = self.options()
        for key in options:
            if key not in valid:
                hint = difflib.get_close_matches(key, list(valid), n=1)
                did_you_mean = f" Did you mean '{prefix}{hint[0]}'?" if hint else ""
                listing = ", ".join(sorted(valid)) or "(none)"
                raise FewshotkitError(
                    f"unknown option '{prefix}{key}' for {self.kind} '{self.name}'.{did_you_mean} "
                    f"Valid options: {listing}"
                )

    def create(self, **options: Any) -> Any:
        """Build the component; None-valued options are dropped so callers can pass every flag."""
        options = {k: v for k, v in options.items() if v is not None}
        self.check_options(options)
        return self.load()(**options)


class Registry:
    """All components of all kinds. Names are unique per kind."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}

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
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            listing = ", ".join(known) or "none registered"
            raise UnknownComponentError(f"unknown {kind} '{name}'.{hint} Known: {listing}") from None

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

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])
