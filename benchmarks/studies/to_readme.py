"""Put a finished bench's ``results.md`` into the README (or docs/results.md) between its markers.

    python benchmarks/studies/to_readme.py bench/chaos_table1 [--readme docs/results.md] [--name chaos_table1]

replaces everything between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` (NAME defaults to
the bench folder's name), so the README's result tables are the bench output, never typed by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fewshotkit.core.atomic import write_text


def replace_section(readme: str, name: str, body: str) -> str:
    """``readme`` with the text between the two markers of ``name`` replaced by ``body``."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    if readme.count(start) != 1 or readme.count(end) != 1 or readme.index(start) > readme.index(end):
        raise ValueError(f"the README needs exactly one '{start}' followed by one '{end}'")
    head, rest = readme.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{body.strip()}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", type=Path, help="a bench output folder holding results.md")
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--name", default=None, help="marker name (default: the bench folder's name)")
    args = parser.parse_args(argv)
    results = args.bench_dir / "results.md"
    if not results.is_file():
        print(f"error: {results} not found: run the bench first (fewshotkit bench --config ...)", file=sys.stderr)
        return 1
    name = args.name or args.bench_dir.name
    try:
        text = replace_section(args.readme.read_text(encoding="utf-8"), name, results.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: {args.readme}: {exc}", file=sys.stderr)
        return 1
    write_text(args.readme, text)  # atomic: a temporary file, then a rename
    print(f"{args.readme}: section '{name}' updated from {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
