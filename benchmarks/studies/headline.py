"""The README's headline results table, generated from the bench sections of docs/results.md.

    python benchmarks/studies/headline.py [--readme README.md] [--results docs/results.md] [--check]

The README holds ``<!-- headline: NAME NAME ... -->`` and ``<!-- /headline -->``; NAME is a bench
section of docs/results.md (``<!-- bench:NAME -->``, written there from a bench run's results.md
by ``to_readme.py``). Everything between the two markers is replaced by one row per method of each
named section: dataset, setting, folds, budget, inference options, where the budget and options
were chosen, the Roy and full-volume means over folds, the published mean, and the section's bench
command. A study whose models were trained without validation scans (``val_scans``) chose on
them; any other study chose its budget and options on the test scans it reports, and its rows say
so. The rows of a ``bench --readings chosen`` section (``METHOD: READING``) take their inference
options from the section's readings line. ``--check`` changes nothing and exits 1 when the README's table is not what the sections give.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from fewshotkit.apps.bench.readings_table import CHOSEN, READINGS_LINE
from fewshotkit.core.atomic import write_text

HEADLINE = re.compile(r"<!-- headline: ([^>]*?) -->\n(.*?)<!-- /headline -->", re.S)
TITLE = re.compile(r"^#### (\w[\w-]*): Dice \(%\), setting (\d)(?: \(exclusion (\w+)\))?, (\d+)-shot, (.*?) protocols?, "
                   r"folds? ([\d,]+)(?:; trained without (\d+) validation scans)?(?:; inference (.*))?$", re.M)
BUDGET = re.compile(r"Budget: ([\d, ]+) steps per trained model \(\d+ models trained, precision: ([\w, ]+)\); "
                    r"training time per model: .*?, ([\d.]+) min(?: \(range [\d.-]+\))? CPU")
TRAINED_ON = re.compile(r" Trained on (.*)\.$", re.M)  # with "(N of M models recorded it)" where some did not
METHOD_TIMES = re.compile(r"^CPU time per model, mean over folds: (.*)\.$", re.M)
DATASETS = {"chaos": "CHAOS-T2", "acdc": "ACDC"}


def bench_section(results: str, name: str) -> str:
    """The text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` of ``results``."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    if results.count(start) != 1 or results.count(end) != 1:
        raise ValueError(f"docs/results.md needs exactly one '{start}' ... '{end}' section")
    return results.split(start)[1].split(end)[0]


def _first_table(section: str) -> list[dict[str, str]]:
    """The rows of the section's first Markdown table, as column -> cell."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        if not line.startswith("| ") or line.startswith("|---"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(header):
            break
        rows.append(dict(zip(header, cells)))
    return rows


def _folds_text(folds: str) -> str:
    """``5 folds`` for ``0,1,2,3,4``; ``fold 0`` for ``0``."""
    return f"{len(folds.split(','))} folds" if "," in folds else f"fold {folds}"


def method_minutes(section: str) -> dict[str, str]:
    """Method -> its CPU minutes per model, from the section's per-method time line (absent in a
    study of one method, where the budget line's time is that method's)."""
    line = METHOD_TIMES.search(section)
    if line is None:
        return {}
    pairs = (part.rsplit(" ", 2) for part in line.group(1).split("; "))
    return {method: minutes for method, minutes, _ in pairs}


def reading_options(section: str) -> dict[str, str]:
    """Reading name -> its options (``KEY=VALUE, ...``; ``as is`` for none) from the section's
    readings line (a ``bench --readings chosen`` section)."""
    line = re.search(rf"^{re.escape(READINGS_LINE)} (.*)\.$", section, re.M)
    if line is None:
        return {}
    readings = {}
    for part in line.group(1).split("; "):
        name, _, options = part.partition(": ")
        readings[name] = "as is" if options == "nothing" else options.replace("`", "")
    return readings


def _method_and_inference(label: str, inference: str | None, readings: dict[str, str]) -> tuple[str, str]:
    """(method, inference options) of a row: a ``--readings chosen`` row (``METHOD: READING``) takes
    its reading's options, any other the title's."""
    if inference != CHOSEN:
        return label, inference or "as is"
    method, _, reading = label.rpartition(": ")
    if reading not in readings:
        raise ValueError(f"the row '{label}' names a reading the section's readings line lacks")
    return method, readings[reading]


def section_rows(results: str, name: str) -> list[str]:
    """One headline row per method of bench section ``name``."""
    section = bench_section(results, name)
    title, budget = TITLE.search(section), BUDGET.search(section)
    command = re.search(r"^\$ (fewshotkit bench .*)$", section, re.M)
    if title is None or budget is None or command is None:
        raise ValueError(f"bench section '{name}' lacks its title, budget line or command")
    dataset, setting, rule, _, protocols, folds, held_out, inference = title.groups()
    steps, precision, cpu_min = budget.groups()
    minutes = method_minutes(section)
    hardware = TRAINED_ON.search(section)  # absent where the runs predate recording it
    on = f"; {hardware.group(1)}" if hardware else ""
    chosen_on = f"{held_out} validation scans a fold" if held_out else "the test scans"
    readings = reading_options(section)
    rows = []
    for row in _first_table(section):
        partial = re.search(r" \((folds? [\d,]+)\)$", row["method"])  # a row missing folds names them
        label = row["method"][:partial.start()] if partial else row["method"]
        method, options = _method_and_inference(label, inference, readings)
        training = f"{steps} steps, {precision} ({minutes.get(method, cpu_min)} CPU min a model{on})"
        # one protocol: its columns carry no protocol name
        roy = row.get("roy: mean") or (row.get("mean", "-") if protocols == "roy" else "-")
        whole = row.get("full-volume: mean") or (row.get("mean", "-") if protocols == "full-volume" else "-")
        cells = [DATASETS.get(dataset, dataset), f"{setting} ({rule})" if rule else setting,
                 partial.group(1) if partial else _folds_text(folds), method, training,
                 options.replace(", ", "<br>"), chosen_on, f"**{roy}**", whole, row.get("published (Roy mean)", "-"),
                 f"`{command.group(1)}`"]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def headline_table(results: str, names: list[str]) -> str:
    """The headline table (Markdown) for the bench sections ``names`` of ``results``."""
    header = ("| dataset | setting | folds | method | training | inference | chosen on | Roy | full-volume "
              "| published (Roy) | command |\n"
              "|---|---:|---|---|---|---|---|---:|---:|---:|---|")
    return "\n".join([header, *(row for name in names for row in section_rows(results, name))])


def update(readme: str, results: str) -> str:
    """``readme`` with its headline table regenerated from ``results``."""
    match = HEADLINE.search(readme)
    if match is None:
        raise ValueError("the README needs '<!-- headline: NAME ... -->' followed by '<!-- /headline -->'")
    table = headline_table(results, match.group(1).split())
    return readme[:match.start(2)] + table + "\n" + readme[match.end(2):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--check", action="store_true", help="exit 1 if the README's table is out of date")
    args = parser.parse_args(argv)
    try:
        readme = args.readme.read_text(encoding="utf-8")
        text = update(readme, args.results.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if text != readme:
            print(f"{args.readme}: the headline table is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    write_text(args.readme, text)  # atomic: a temporary file, then a rename
    print(f"{args.readme}: headline table updated from {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
