"""Where the manual writes commands: README.md, the pages under docs/ (shell blocks line by line,
``console``/``text`` blocks at their ``$ `` prompts, inline code spans that start with ``fewshotkit``)
and the comment lines of benchmarks/studies/*.toml, as :class:`Snippet` values for
:mod:`manual_commands` to check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = {"bash", "sh", "shell"}  # every line is a command
PROMPT_LANGUAGES = {"console", "text"}  # the lines after a "$ " prompt are commands, the others output
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w-]*)")
INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
PARAGRAPH = re.compile(r"(?:[^\n]*\S[^\n]*(?:\n|$))+")
INLINE_COMMAND = re.compile(r"(?:[A-Za-z_]\w*=\S*\s+)*(?:\S*python3?\s+-m\s+)?fewshotkit\s")
USAGE_ERROR = re.compile(r"Error: No such (?:option|command)")


@dataclass(frozen=True)
class Snippet:
    """One logical shell line as a file writes it: its physical lines (number, text) and the click
    usage error the page shows right after it (empty when none)."""

    source: Path
    lines: tuple[tuple[int, str], ...]
    shown_error: str = ""

    @property
    def text(self) -> str:
        """The lines joined into one, their continuation backslashes removed."""
        return " ".join(line.rstrip().removesuffix("\\") for _, line in self.lines)

    def line_of(self, word: str) -> int:
        """The number of the first physical line holding ``word`` (the first line when none does)."""
        return next((number for number, line in self.lines if word in line), self.lines[0][0])

    def where(self, word: str) -> str:
        return f"{self.source.relative_to(ROOT).as_posix()}:{self.line_of(word)}"


# ---- where the commands are written -------------------------------------------------------------


def manual_pages() -> list[Path]:
    """README.md and every Markdown page of the manual."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def study_files() -> list[Path]:
    return sorted((ROOT / "benchmarks" / "studies").glob("*.toml"))


def logical_lines(numbered: list[tuple[int, str]]) -> list[tuple[tuple[int, str], ...]]:
    """Physical lines grouped into logical ones: a line ending in a backslash continues on the next."""
    groups: list[tuple[tuple[int, str], ...]] = []
    current: list[tuple[int, str]] = []
    for number, line in numbered:
        current.append((number, line))
        if not line.rstrip().endswith("\\"):
            groups.append(tuple(current))
            current = []
    if current:
        groups.append(tuple(current))
    return groups


def split_fences(lines: list[str]) -> tuple[list[tuple[str, list[tuple[int, str]]]], list[str]]:
    """The fenced blocks of a Markdown page (language, numbered lines) and the page's prose: the
    page with every block line blanked, so line numbers stay."""
    blocks: list[tuple[str, list[tuple[int, str]]]] = []
    prose: list[str] = []
    fence = ""
    for number, line in enumerate(lines, start=1):
        match = FENCE.match(line)
        if not fence and match:
            fence = match.group(1)
            blocks.append((match.group(2).lower(), []))
        elif fence and line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            fence = ""
        elif fence:
            blocks[-1][1].append((number, line))
        prose.append("" if fence or match else line)
    return blocks, prose


def prompt_snippets(source: Path, numbered: list[tuple[int, str]]) -> Iterator[Snippet]:
    """The ``$ `` commands of a console or text block, each with the usage error its output shows."""
    index = 0
    while index < len(numbered):
        number, line = numbered[index]
        index += 1
        if not line.lstrip().startswith("$ "):
            continue
        command = [(number, line.lstrip()[2:])]
        while command[-1][1].rstrip().endswith("\\") and index < len(numbered):
            command.append(numbered[index])
            index += 1
        output = []
        while index < len(numbered) and not numbered[index][1].lstrip().startswith("$ "):
            output.append(numbered[index][1])
            index += 1
        shown = "\n".join(out for out in output if USAGE_ERROR.search(out))
        yield Snippet(source, tuple(command), shown)


def inline_snippets(source: Path, prose: list[str]) -> Iterator[Snippet]:
    """The inline code spans of the prose that start with a ``fewshotkit`` command (a span may run
    over several lines of one paragraph)."""
    text = "\n".join(prose)
    for paragraph in PARAGRAPH.finditer(text):
        first_line = text.count("\n", 0, paragraph.start()) + 1
        for span in INLINE_CODE.finditer(paragraph.group(0)):
            code = span.group(2).strip()
            if INLINE_COMMAND.match(code):
                start = first_line + paragraph.group(0).count("\n", 0, span.start())
                yield Snippet(source, tuple(enumerate(code.split("\n"), start=start)))


def page_snippets(page: Path) -> Iterator[Snippet]:
    """Every shell line of a Markdown page's blocks, then its inline commands."""
    blocks, prose = split_fences(page.read_text(encoding="utf-8").splitlines())
    for language, numbered in blocks:
        if language in SHELL_LANGUAGES:
            yield from (Snippet(page, group) for group in logical_lines(numbered))
        elif language in PROMPT_LANGUAGES:
            yield from prompt_snippets(page, numbered)
    yield from inline_snippets(page, prose)


def study_snippets(study: Path) -> Iterator[Snippet]:
    """The comment lines of a study file, read as one shell script."""
    lines = study.read_text(encoding="utf-8").splitlines()
    comments = [(n, line.lstrip()[1:]) for n, line in enumerate(lines, start=1) if line.lstrip().startswith("#")]
    yield from (Snippet(study, group) for group in logical_lines(comments))


def all_snippets() -> list[Snippet]:
    snippets = [s for page in manual_pages() for s in page_snippets(page)]
    return snippets + [s for study in study_files() for s in study_snippets(study)]


# ---- shell syntax ----------------------------------------------------------------------------------
