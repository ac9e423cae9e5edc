"""The ``fewshotkit`` commands the manual writes, found and checked against the CLI's click tree
(:mod:`test_docs_commands` holds the tests).

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
from pathlib import Path

import click

from fewshotkit.cli import cli
from manual_snippets import PROMPT_LANGUAGES, ROOT, Snippet, logical_lines, prompt_snippets

# "fewshotkit" where a program goes: at the start of a command (after any NAME=value) or after -m
PROGRAM_POSITION = re.compile(r"(?:^\s*|[;&|(]\s*|\s-m\s+)(?:[A-Za-z_]\w*=\S*\s+)*(?:\S*/)?fewshotkit(?:\s|$)", re.M)
ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=.*", re.S)
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_-]*|\.\.\.|\$.*")
SHELL_OPERATOR = re.compile(r"[();<>|&]+")


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
