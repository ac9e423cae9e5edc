"""What a component's options are, read from its factory's signature and docstring."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

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


def doc_entries(doc: str) -> dict[str, str]:
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


def annotation_text(param: inspect.Parameter) -> str:
    """A parameter's annotation as written, else its default's type name ("" when neither says)."""
    annotation = param.annotation
    if annotation is inspect.Parameter.empty:
        return "" if param.default in (inspect.Parameter.empty, None) else type(param.default).__name__
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
