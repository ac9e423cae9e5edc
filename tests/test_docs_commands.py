"""Every ``fewshotkit`` command the manual writes is one the CLI has (how commands are found and
checked: :mod:`manual_commands`)."""

from __future__ import annotations

import pytest

from manual_commands import PROGRAM_POSITION, fewshotkit_commands, manual_problems, problems_of
from manual_snippets import all_snippets


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
