"""What users type: names checked against choices (with a did-you-mean) and ``KEY=VALUE`` values.

One helper each, so every command suggests and parses the same way (cf. MONAI's ``look_up_option``):

- :func:`did_you_mean` / :func:`look_up`: close matches of a misspelt name;
- :func:`parse_value` / :func:`parse_assignment`: ``--set`` values are TOML literals (``4``, ``0.5``,
  ``true``, ``"x"``, ``[1, 2]``); ``null`` / ``none`` mean "no value" (the default); anything else
  is the raw string.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any, Iterable

from fewshotkit.core.errors import FewshotkitError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: how close a name must be to be suggested (difflib ratio)
CUTOFF = 0.6
_NULLS = ("null", "none")


def close_matches(name: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """Up to ``n`` choices close to ``name``, best first (case-insensitive when nothing matches as typed)."""
    choices = list(choices)
    found = difflib.get_close_matches(name, choices, n=n, cutoff=CUTOFF)
    if not found:
        lowered = {c.lower(): c for c in choices}
        found = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=CUTOFF)]
    return found


def did_you_mean(name: str, choices: Iterable[str], n: int = 1, prefix: str = "") -> str:
    """`` Did you mean 'x'?`` (or ``'x' or 'y'``) for close choices, else an empty string."""
    found = close_matches(name, choices, n)
    if not found:
        return ""
    return f" Did you mean {' or '.join(repr(prefix + c) for c in found)}?"


def look_up(name: str, choices: Iterable[str], what: str, listing: str | None = None) -> str:
    """``name`` if it is one of ``choices``, else a :class:`FewshotkitError`:
    ``unknown <what> '<name>'. Did you mean ...? <Listing>: a, b``."""
    choices = list(choices)
    if name in choices:
        return name
    label = listing if listing is not None else f"{what[:1].upper()}{what[1:]}s"
    raise FewshotkitError(f"unknown {what} '{name}'.{did_you_mean(name, choices)} {label}: {', '.join(choices)}")


def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML literal, ``None`` for ``null``/``none``, else the string itself."""
    text = text.strip()
    if text.lower() in _NULLS:
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(item: str, example: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, :func:`parse_value` of value); ``example`` shows the form in errors."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise FewshotkitError(f"--set '{item}': expected KEY=VALUE, e.g. {example}")
    return key, parse_value(raw)
