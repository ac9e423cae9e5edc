"""Rebuild the bench sections of a page from their own commands and the cells cached so far.

    python benchmarks/studies/regenerate.py chaos_zoo_s2 chaos_zoo_s2_successors --in ~/studies
    python benchmarks/studies/regenerate.py --all --check --in ~/studies

Each ``<!-- bench:NAME -->`` section of the page (``--readme``, default docs/results.md) opens with
the command that made it (``$ fewshotkit bench ...``). That command runs again in the folder
``--in`` (which holds the stores and a ``benchmarks`` link, as the page's commands assume) with
``--cached`` added, so nothing trains or is evaluated, and the ``results.md`` it writes replaces the
section (:mod:`to_readme`), its command as written. ``--check`` changes nothing: it lists the sections whose tables differ
from what their cells give now, and exits 1 if any does. A section whose command finds no cached
cell is reported and left as it is, and so is one that holds the line ``<!-- printed -->``: a table
kept as its run printed it after its cells were lost, whose command now finds the cells of a later
run (delete the line to rebuild it from them).
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from to_readme import replace_section  # noqa: E402

from fewshotkit.core.atomic import write_text  # noqa: E402

SECTION = re.compile(r"<!-- bench:([\w.-]+) -->\n(.*?)<!-- /bench:\1 -->", re.S)
COMMAND = re.compile(r"^\$ (fewshotkit bench .+)$", re.M)
PRINTED = "<!-- printed -->"


def sections(page: str) -> dict[str, str]:
    """NAME -> the section's text, for every bench section of ``page``."""
    return {match.group(1): match.group(2) for match in SECTION.finditer(page)}


def command_of(section: str) -> list[str] | None:
    """The section's bench command as argv, with ``--cached`` (None: the section shows none)."""
    match = COMMAND.search(section)
    if match is None:
        return None
    argv = shlex.split(match.group(1))
    return argv if "--cached" in argv else [*argv, "--cached"]


def rebuilt(argv: list[str], folder: Path) -> str | None:
    """The ``results.md`` the command writes when run in ``folder`` (None: it failed, e.g. no cell)."""
    start = time.time()
    done = subprocess.run(argv, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        return None
    written = [p for p in folder.rglob("results.md") if p.stat().st_mtime >= start]
    return max(written, key=lambda p: p.stat().st_mtime).read_text(encoding="utf-8") if written else None


def with_command(body: str, section: str) -> str:
    """``body`` with the command line ``section`` shows (as written: without the ``--cached`` added)."""
    shown = COMMAND.search(section)
    if shown is None:
        return body
    line = shown.group(0)
    return COMMAND.sub(lambda _: line, body, count=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="section names (see --all)")
    parser.add_argument("--all", action="store_true", help="every bench section of the page")
    parser.add_argument("--readme", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--in", dest="folder", type=Path, default=Path("."),
                        help="where the commands run: the folder with the stores and a benchmarks link")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a section differs")
    args = parser.parse_args(argv)
    page = args.readme.read_text(encoding="utf-8")
    found = sections(page)
    names = list(found) if args.all else args.names
    unknown = [n for n in names if n not in found]
    if unknown or not names:
        print(f"error: {args.readme} has no section {', '.join(unknown) or '(none given)'}; it has: "
              f"{', '.join(found)}", file=sys.stderr)
        return 1
    differ = []
    for name in names:
        if PRINTED in found[name].splitlines():
            print(f"{name}: left as it is (kept as printed)")
            continue
        command = command_of(found[name])
        body = None if command is None else rebuilt(command, args.folder.expanduser())
        if body is not None:
            body = with_command(body, found[name])
        if body is None:
            print(f"{name}: left as it is ({'no command' if command is None else 'no cached cell, or it failed'})")
        elif body.strip() != found[name].strip():
            differ.append(name)
            page = page if args.check else replace_section(page, name, body)
            print(f"{name}: {'differs' if args.check else 'rebuilt'}")
        else:
            print(f"{name}: unchanged")
    if not args.check and differ:
        write_text(args.readme, page)  # atomic: a temporary file, then a rename
    return 1 if args.check and differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
