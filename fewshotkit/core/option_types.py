"""Checking option values against the type annotations of a component's factory, before building it.

``--set pooler.test_window=abc`` or ``options.bg_weight = "heavy"`` must be a one-line error
naming the option, not a ``TypeError`` deep inside a model. Only the types a user can get wrong
from a ``--set`` or a TOML file are checked (``bool``, ``int``, ``float``, ``str``, ``None``,
``Literal``, unions, lists / tuples / sequences of those, mappings); any other annotation, or one
that cannot be resolved, accepts every value.
"""

from __future__ import annotations

import collections.abc
import inspect
import sys
import types
import typing
from typing import Any, Callable

from fewshotkit.core.errors import FewshotkitError

_ANY = object()  # "no usable annotation"
_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable)
_MAPPINGS = (dict, collections.abc.Mapping)


def annotations_of(factory: Callable[..., Any]) -> dict[str, Any]:
    """Parameter name -> resolved annotation of ``factory`` (a class: its ``__init__``); unresolvable ones are left out."""
    target = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return {}
    module = sys.modules.get(getattr(target, "__module__", ""), None)
    namespace = dict(vars(module)) if module is not None else {}
    out: dict[str, Any] = {}
    for name, param in params.items():
        annotation = param.annotation
        if annotation is inspect.Parameter.empty:
            continue
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # noqa: S307 - the plugin's own annotation text
            except Exception:  # a name only imported under TYPE_CHECKING, a newer syntax ...
                continue
        out[name] = annotation
    return out


def matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` (plain data from TOML) fits ``annotation``; unknown annotations accept anything."""
    if annotation in (Any, object, inspect.Parameter.empty):
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    container = origin or annotation
    if container in _SEQUENCES:
        if not isinstance(value, (list, tuple)):
            return False
        if not args:
            return True
        if container is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args))
        return all(matches(v, args[0]) for v in value)
    if container in _MAPPINGS:
        return isinstance(value, dict)
    return True  # a class or construct this check does not know: let the factory judge


def describe(annotation: Any) -> str:
    """``int | None`` -> "an integer or none" (for error messages)."""
    if annotation is None or annotation is type(None):
        return "none"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if annotation in names:
        return names[annotation]
    if (origin or annotation) in _SEQUENCES:
        if not args:
            return "a list"
        if (origin or annotation) is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})"
        return f"a list (each {describe(args[0])})"
    if (origin or annotation) in _MAPPINGS:
        return "a table"
    return getattr(annotation, "__name__", str(annotation))


def check_option_values(kind: str, name: str, factory: Callable[..., Any], options: dict[str, Any],
                        prefix: str = "") -> None:
    """Raise a one-line :class:`FewshotkitError` for the first option whose value does not fit its annotation."""
    annotations = annotations_of(factory)
    for key, value in options.items():
        annotation = annotations.get(key, _ANY)
        if annotation is _ANY or matches(value, annotation):
            continue
        raise FewshotkitError(f"option '{prefix}{key}' of {kind} '{name}' must be {describe(annotation)}, got {value!r}")
