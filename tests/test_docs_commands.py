"""Every ``fewshotkit`` command the manual writes is one the CLI has.

The commands are read from README.md, every page under docs/ (shell blocks ``bash``/``sh``/``shell``
line by line; ``console``/``text`` blocks at their ``$ `` prompts; inline code spans that start
with ``fewshotkit``) and the comment lines of benchmarks/studies/*.toml. Each is checked against the
live click command tree, without running it: the command path exists (nested groups such as
``store check`` too) and every option written after it (``--name``, ``--name=value``, ``-x``) is one
of that command's, or one of a group's written before its subcommand (``fewshotkit --plugins-dir
DIR compose ...``). CHANGELOG.md is history, written in the names of its day, and is not read.

Shell syntax is read as bash reads it: ``\\`` continues a line, ``|``, ``&&``, ``;`` and ``&`` end a
command, ``#`` starts a comment, ``>``/``<`` redirections are left out, ``NAME=value`` before the
program is an environment setting, ``{a,b}`` expands, ``$NAME`` takes the value the same file
assigned to it, and ``python -m fewshotkit`` (or ``torchrun ... -m fewshotkit``) is the CLI too. An
upper-case word or ``...`` where a subcommand goes (``fewshotkit ingest PRESET SRC``) stands for any
of the group's subcommands. A page may show a wrong command on purpose: a ``$ `` command whose
output, shown right after it, is click's ``Error: No such option``/``No such command`` must fail
the check in just the way shown.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from fewshotkit.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = {"bash", "sh", "shell"}  # every line is a command
PROMPT_LANGUAGES = {"console", "text"}  # the lines after a "$ " prompt are commands, the others output
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w-]*)")
INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
PARAGRAPH = re.compile(r"(?:[^\n]*\S[^\n]*(?:\n|$))+")
INLINE_COMMAND = re.compile(r"(?:[A-Za-z_]\w*=\S*\s+)*(?:\S*python3?\s+-m\s+)?fewshotkit\s")
# "fewshotkit" where a program goes: at the start of a command (after any NAME=value) or after -m
PROGRAM_POSITION = re.compile(r"(?:^\s*|[;&|(]\s*|\s-m\s+)(?:[A-Za-z_]\w*=\S*\s+)*(?:\S*/)?fewshotkit(?:\s|$)", re.M)
ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=.*", re.S)
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_-]*|\.\.\.|\$.*")
SHELL_OPERATOR = re.compile(r"[();<>|&]+")
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


def shell_words(text: str) -> list[str]:
    """The words and operators of one logical shell line, as bash splits them, without its comment."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # "#" starts a comment only at the start of a word: a#b is one word
    words = []
    for word in lexer:
        if word.startswith("#"):
            break
        words.append(word)
    return words


def split_top_level(body: str) -> list[str]:
    """``a,{b,c},d`` -> ``["a", "{b,c}", "d"]``: the commas outside nested braces split."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(body):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(body[start:index])
            start = index + 1
    return [*parts, body[start:]]


def expand_braces(word: str) -> list[str]:
    """Bash brace expansion of one word: ``x{a,b}y`` -> ``xay xby`` (nested too); braces without a
    comma stay as written."""
    depth, start = 0, 0
    for index, char in enumerate(word):
        if char == "{":
            start = index if depth == 0 else start
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            parts = split_top_level(word[start + 1:index]) if depth == 0 else []
            if len(parts) > 1:
                return [w for part in parts for w in expand_braces(word[:start] + part + word[index + 1:])]
    return [word]


def expand_word(word: str, variables: dict[str, str]) -> list[str]:
    """A word as bash passes it on: ``$NAME`` of an assigned variable split into its words, braces
    expanded; anything else (globs, unknown variables) as written."""
    whole = VARIABLE.fullmatch(word)
    if whole and (whole.group(1) or whole.group(2)) in variables:
        return shlex.split(variables[whole.group(1) or whole.group(2)])
    return expand_braces(word)


def simple_commands(words: list[str]) -> list[list[str]]:
    """The words split at ``|``, ``&&``, ``;``, ``&`` and parentheses; a redirection and its target left out."""
    commands: list[list[str]] = [[]]
    skip_target = False
    for word in words:
        if skip_target:
            skip_target = False
        elif SHELL_OPERATOR.fullmatch(word) and ("<" in word or ">" in word):
            skip_target = True
        elif SHELL_OPERATOR.fullmatch(word):
            commands.append([])
        else:
            commands[-1].append(word)
    return [command for command in commands if command]


def fewshotkit_argv(words: list[str]) -> list[str] | None:
    """The arguments one simple command gives the fewshotkit CLI, or None when it runs something else."""
    index = 0
    while index < len(words) and ASSIGNMENT.fullmatch(words[index]):
        index += 1
    if index < len(words) and words[index].rsplit("/", 1)[-1] == "fewshotkit":
        return words[index + 1:]
    for at in range(index, len(words) - 1):
        if words[at] == "-m" and words[at + 1] == "fewshotkit":
            return words[at + 2:]
    return None


def fewshotkit_commands(text: str, variables: dict[str, str]) -> list[list[str]]:
    """The fewshotkit argument lists of one logical shell line; assignments standing alone
    (``E="--fold 0"``) are recorded in ``variables`` for the lines after."""
    found = []
    for words in simple_commands(shell_words(text)):
        if all(ASSIGNMENT.fullmatch(word) for word in words):
            variables.update(word.split("=", 1) for word in words)
            continue
        argv = fewshotkit_argv(words)
        if argv is not None:
            found.append([expanded for word in argv for expanded in expand_word(word, variables)])
    return found


# ---- the click command tree ------------------------------------------------------------------------


def option_arity(command: click.Command, ctx: click.Context) -> dict[str, int]:
    """Every option name of ``command`` (``--x``, ``--no-x``, ``-x``, ``--help``) -> the values it takes."""
    table = {}
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            arity = 0 if param.is_flag or param.count else param.nargs
            table.update({name: arity for name in [*param.opts, *param.secondary_opts]})
    return table


def suggestion(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.7)
    return f" (did you mean {close[0]}?)" if close else ""


def option_problem(word: str, table: dict[str, int], path: list[str]) -> tuple[str, str] | None:
    """``(name, message)`` when the option word is no option of the command, else None."""
    name = word.split("=", 1)[0] if word.startswith("--") else word[:2]
    if "$" in name or name in table:
        return None
    return name, f"`{' '.join(path)}` has no option {name}{suggestion(name, sorted(table))}"


def scan_options(words: list[str], table: dict[str, int], path: list[str],
                 stop_at_positional: bool) -> tuple[list[tuple[str, str]], int]:
    """The option problems among ``words`` and the index where scanning stopped (a group's
    subcommand when ``stop_at_positional``, else the end)."""
    problems, index = [], 0
    while index < len(words):
        word = words[index]
        if word == "--":
            return problems, len(words)
        is_long, is_short = word.startswith("--"), re.fullmatch(r"-[A-Za-z].*", word) is not None
        if not (is_long or is_short):
            if stop_at_positional:
                return problems, index
            index += 1
            continue
        problem = option_problem(word, table, path)
        problems += [problem] if problem else []
        arity = table.get(word.split("=", 1)[0] if is_long else word[:2], 0)
        attached = "=" in word if is_long else len(word) > 2
        if is_short and not arity and attached:  # -ab: flags combined
            problems += [p for c in word[2:] if (p := option_problem(f"-{c}", table, path))]
        index += 1 + (arity if not attached else 0)
    return problems, index


def any_subcommand_options(group: click.Group, ctx: click.Context) -> dict[str, int]:
    """The options of every subcommand of ``group``: what a placeholder subcommand may take."""
    table: dict[str, int] = {}
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        if sub is not None:
            table.update(option_arity(sub, click.Context(sub, info_name=name, parent=ctx)))
    return table


def command_problems(argv: list[str]) -> list[tuple[str, str]]:
    """``(word, message)`` for each word of ``fewshotkit ARGV`` the command tree does not know."""
    ctx = click.Context(cli, info_name="fewshotkit")
    command: click.Command = cli
    path, problems = ["fewshotkit"], []
    while isinstance(command, click.Group):
        found, index = scan_options(argv, option_arity(command, ctx), path, stop_at_positional=True)
        problems += found
        if index >= len(argv):
            return problems
        name, argv = argv[index], argv[index + 1:]
        sub = command.get_command(ctx, name)
        if sub is None and PLACEHOLDER.fullmatch(name):
            table = any_subcommand_options(command, ctx)
            return problems + scan_options(argv, table, [*path, name], stop_at_positional=False)[0]
        if sub is None:
            choices = command.list_commands(ctx)
            return problems + [(name, f"`{' '.join(path)}` has no command {name!r}{suggestion(name, choices)}"
                                      f"; it has: {', '.join(choices)}")]
        ctx, command, path = click.Context(sub, info_name=name, parent=ctx), sub, [*path, name]
    return problems + scan_options(argv, option_arity(command, ctx), path, stop_at_positional=False)[0]


# ---- the check --------------------------------------------------------------------------------------


def snippet_problems(snippet: Snippet, variables: dict[str, str]) -> list[str]:
    """One line per problem of the snippet: file:line, the command as written and what is wrong."""
    try:
        commands = fewshotkit_commands(snippet.text, variables)
    except ValueError as exc:  # an unclosed quote: prose (a study file's comment) unless it runs fewshotkit
        if not PROGRAM_POSITION.search(snippet.text):
            return []
        return [f"{snippet.where('fewshotkit')}: cannot read `{snippet.text.strip()}` as shell: {exc}"]
    found = [problem for argv in commands for problem in command_problems(argv)]
    if snippet.shown_error:
        if not found:
            return [f"{snippet.where('fewshotkit')}: shows {snippet.shown_error.strip()!r} but the CLI "
                    f"accepts `{snippet.text.strip()}`"]
        found = [(word, message) for word, message in found if word not in snippet.shown_error]
    return [f"{snippet.where(word)}: {message}" for word, message in found]


def manual_problems(snippets: list[Snippet]) -> list[str]:
    """Every problem of every snippet; a file's assignments hold for its later lines."""
    variables: dict[Path, dict[str, str]] = {}
    return [p for s in snippets for p in snippet_problems(s, variables.setdefault(s.source, {}))]


def problems_of(text: str, language: str = "bash") -> list[str]:
    """The problems of a page holding just ``text`` in one block (the checks of the checker)."""
    numbered = list(enumerate(text.splitlines(), start=1))
    page = ROOT / "README.md"
    snippets = (prompt_snippets(page, numbered) if language in PROMPT_LANGUAGES
                else (Snippet(page, group) for group in logical_lines(numbered)))
    return manual_problems(list(snippets))


def test_the_manual_writes_only_commands_and_options_the_cli_has():
    problems = manual_problems(all_snippets())
    assert problems == [], "commands the CLI does not have:\n" + "\n".join(problems)


def test_the_commands_are_found_where_they_are_written():
    argvs = [argv for s in all_snippets() if PROGRAM_POSITION.search(s.text) for argv in fewshotkit_commands(s.text, {})]
    assert len(argvs) > 200
    heads = {" ".join(argv[:2]) for argv in argvs}
    assert {"store check", "train --preset", "bench --config", "--plugins-dir ."} <= heads
    sources = {s.source.name for s in all_snippets() if PROGRAM_POSITION.search(s.text)}
    assert {"README.md", "getting-started.md", "training.md", "chaos_zoo.toml"} <= sources


@pytest.mark.parametrize("text, expected", [
    ("fewshotkit train --preset x --stpes 10", ["README.md:1: `fewshotkit train` has no option --stpes"
                                                " (did you mean --steps?)"]),
    ("fewshotkit bench --confg=s.toml", ["README.md:1: `fewshotkit bench` has no option --confg"
                                         " (did you mean --config?)"]),
    ("fewshotkit store chek s.h5", ["README.md:1: `fewshotkit store` has no command 'chek' (did you mean"
                                    " check?); it has: check, info, show"]),
    ("fewshotkit eval RUN --plugins-dir d", ["README.md:1: `fewshotkit eval` has no option --plugins-dir"]),
    ("OMP_NUM_THREADS=1 python -m fewshotkit bench \\\n  --fold 0 --nope &", ["README.md:2: `fewshotkit bench`"
                                                                             " has no option --nope"]),
    ("cp a b && fewshotkit pseudolabel b --wiht x | tail > log  # --bad", [
        "README.md:1: `fewshotkit pseudolabel` has no option --wiht (did you mean --with?)"]),
    ('E="--fold 0 --eval-sett a=1"\nfewshotkit bench $E', ["README.md:2: `fewshotkit bench` has no option"
                                                            " --eval-sett (did you mean --eval-set?)"]),
    ("fewshotkit bench --{plan,plann}", ["README.md:1: `fewshotkit bench` has no option --plann"
                                                          " (did you mean --plan?)"]),
    ("fewshotkit ingest PRESET SRC -o s.h5 --lmit 2", ["README.md:1: `fewshotkit ingest PRESET` has no option"
                                                        " --lmit (did you mean --limit?)"]),
    ("fewshotkit --plugins-dir d --strict-plugins store check s.h5 --help", []),
    ("fewshotkit plugins --json new pooler p --out .", []),
    ("fewshotkit --version; pip install fewshotkit; echo fewshotkit --nope", []),
    ("fewshotkit segment --set x=--nope -o a#b --shots 1", []),
])
def test_the_checker_finds_what_is_wrong(text, expected):
    assert problems_of(text) == expected


def test_a_shown_usage_error_must_be_the_one_the_cli_gives():
    shown = "$ fewshotkit bench --stpes 10\nError: No such option: --stpes (Possible options: --steps)\n"
    assert problems_of(shown, "console") == []
    wrong = "$ fewshotkit bench --steps 10\nError: No such option: --stpes\n"
    assert problems_of(wrong, "console") == ["README.md:1: shows 'Error: No such option: --stpes' but the CLI"
                                             " accepts `fewshotkit bench --steps 10`"]
