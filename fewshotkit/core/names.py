"""File-name-safe names for scans, classes and methods."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any


def safe_name(text: str) -> str:
    """A file-name-safe version of a scan id, class or method name: never empty, never ``.`` or ``..``
    (no runs of dots, none at either end), so it always names an entry of its own folder."""
    return re.sub(r"[^A-Za-z0-9._-]+|\.{2,}", "-", str(text)).strip("-.") or "unnamed"


def unique_safe_names(texts: dict[Any, str]) -> dict[Any, str]:
    """key -> :func:`safe_name` of its text, distinct per key: texts whose safe names collide
    ("right kidney", "right-kidney") get ``-<key>`` appended; a name that still collides (texts "a",
    "a" and "a-1" under keys 0, 1, 2) gets ``-2``, ``-3``, ... in key order after its first holder."""
    safe = {key: safe_name(text) for key, text in texts.items()}
    counts = Counter(safe.values())
    named = {key: f"{name}-{safe_name(str(key))}" if counts[name] > 1 else name for key, name in safe.items()}
    out: dict[Any, str] = {}
    for key, name in named.items():
        unique, number = name, 1
        while unique in out.values():
            number += 1
            unique = f"{name}-{number}"
        out[key] = unique
    return out
