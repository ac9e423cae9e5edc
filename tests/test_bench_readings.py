"""``bench --readings``: a study's models read under named sets of inference options, each method's
best chosen on the validation scans and carried to the test scans."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from conftest import benchmark_script, pseudolabelled_store
from fewshotkit.apps.bench.config import BenchConfig
from fewshotkit.apps.bench.readings import ReadingsTable, best_reading
from fewshotkit.core.errors import FewshotkitError

READINGS = {"as trained": [], "threshold 0.9": ["fg_threshold=0.9"],
            "largest component": ["postprocess=largest-component"]}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return pseudolabelled_store(tmp_path_factory.mktemp("readings") / "syn.h5", min_size=100, volumes=8, seed=0,
                                slices=12, size=64)


def _config(tmp_path: Path, store: Path, readings: dict[str, list[str]] = READINGS) -> Path:
    lines = "\n".join(f'"{name}" = {json.dumps(items)}' for name, items in readings.items())
    config = tmp_path / "study.toml"
    config.write_text(textwrap.dedent(f"""\
        stores = ["{store}"]
        methods = ["alpnet-init-cpu", "ssl-alpnet-cpu"]
        steps = 2
        device = "cpu"
        val_scans = 2
        folds = [0, 1]
        overrides = ["image_size=64", "backbone.width=8", "backbone.out_channels=32", "training.batch_size=2"]
        out = "{tmp_path / 'study'}"

        [readings]
        """) + lines + "\n")
    return config


def _headline():
    return benchmark_script("studies/headline.py")


def _means(path: Path) -> dict[str, float]:
    """Row label -> the ``mean`` column of a bench comparison JSON."""
    return {row["label"]: row["mean"]["mean"] for row in json.loads(path.read_text())["rows"]}


def test_readings_are_chosen_on_validation_and_carried_to_the_test_scans(run_cli, store, tmp_path):
    config = _config(tmp_path, store)
    out = tmp_path / "study"
    early = run_cli("bench", "--config", str(config), "--readings", "chosen")
    assert early.exit_code != 0 and "--split validation" in early.output and "--readings all" in early.output

    chosen_all = run_cli("bench", "--config", str(config), "--split", "validation", "--readings", "all")
    assert chosen_all.exit_code == 0, chosen_all.output
    assert not list(out.glob("*_comparison.*")), "the readings leave the study's own table files alone"
    document = json.loads((out / "readings.json").read_text())
    table = document["tables"]["syn_validation"]
    assert table["readings"] == list(READINGS) and len(table["rows"]) == 2
    assert (out / "syn_validation_readings.png").read_bytes().startswith(b"\x89PNG")
    results = (out / "results.md").read_text()
    assert "| chosen |" in results and "**" in results and "threshold 0.9: `fg_threshold=0.9`" in results
    assert "Budget: 2 steps per trained model (2 models trained" in results, "the models named once, not per reading"
    # each column is the study read with that reading alone; the choice is the highest mean
    for reading, items in READINGS.items():
        plain = run_cli("bench", "--config", str(config), "--split", "validation", *(f"--eval-set={o}" for o in items),
                        "-o", str(out))
        assert plain.exit_code == 0 and "evaluating" not in plain.output, plain.output  # every cell cached
        for row in table["rows"]:
            scored = row["readings"][reading]
            assert scored["mean"] == pytest.approx(_means(out / "syn_validation_comparison.json")[row["label"]])
            assert scored["folds"] == 2
    for row in table["rows"]:
        assert row["chosen"] == max(READINGS, key=lambda r: row["readings"][r]["mean"])

    picked = run_cli("bench", "--config", str(config), "--readings", "chosen")
    assert picked.exit_code == 0, picked.output
    rows = _means(out / "syn_comparison.json")
    assert set(rows) == {f"{row['label']}: {row['chosen']}" for row in table["rows"]}
    # the headline table gives each row its chosen reading's options
    report = (out / "results.md").read_text()
    section = f"<!-- bench:s -->\n```console\n$ fewshotkit bench --readings chosen\n```\n{report}<!-- /bench:s -->"
    headline = _headline().section_rows(section, "s")
    assert len(headline) == len(table["rows"])
    for line, row in zip(headline, table["rows"]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3] == row["label"] and cells[5] == ("<br>".join(READINGS[row["chosen"]]) or "as is"), line
    for row in table["rows"]:
        alone = run_cli("bench", "--config", str(config), *(f"--eval-set={o}" for o in READINGS[row["chosen"]]))
        assert alone.exit_code == 0 and "evaluating" not in alone.output
        assert _means(out / "syn_comparison.json")[row["label"]] == pytest.approx(rows[f"{row['label']}: {row['chosen']}"])


def test_bad_readings_are_one_line_errors_before_anything_runs(run_cli, store, tmp_path):
    none = _config(tmp_path, store, {})
    result = run_cli("bench", "--config", str(none), "--split", "validation", "--readings", "all")
    assert result.exit_code != 0 and "names no readings; add a [readings] table" in result.output
    training = _config(tmp_path, store, {"longer": ["training.steps=5"]})
    result = run_cli("bench", "--config", str(training), "--readings", "all")
    assert result.exit_code != 0 and "'training.steps=5' is a training option" in result.output
    unknown = _config(tmp_path, store, {"odd": ["pooler.no_such_option=1"]})
    result = run_cli("bench", "--config", str(unknown), "--split", "validation", "--readings", "all")
    assert result.exit_code != 0 and "reading 'odd'" in result.output and "no_such_option" in result.output
    assert not (tmp_path / "study" / "runs").exists(), "nothing trains before every reading is checked"
    circular = run_cli("bench", "--config", str(_config(tmp_path, store)), "--split", "validation", "--readings", "chosen")
    assert circular.exit_code != 0 and "--readings chosen scores the test scans" in circular.output
    planned = run_cli("bench", "--config", str(_config(tmp_path, store)), "--split", "validation", "--readings", "chosen",
                      "--plan")
    assert planned.exit_code != 0 and "--readings chosen scores the test scans" in planned.output, "no plan of a refused run"

    def config(**keys):
        return BenchConfig(stores=[str(store)], methods=["alpnet-init"], out=str(tmp_path), **keys)

    with pytest.raises(FewshotkitError, match="reading 'x' must have a name and a list"):
        config(readings={"x": [1]})
    with pytest.raises(FewshotkitError, match="readings 'a' and 'b' give the same options"):
        config(readings={"a": ["fg_threshold=0.6", "support_zoom=0.05"], "b": ["support_zoom=0.05", "fg_threshold=0.6"]})
    with pytest.raises(FewshotkitError, match="would be overridden by the study's own --postprocess"):
        config(postprocess="none", readings={"lcc": ["postprocess=largest-component"]})
    with pytest.raises(FewshotkitError, match="a name may not hold"):
        config(readings={"zoom: 0.05": ["support_zoom=0.05"]})
    no_validation = _config(tmp_path, store).read_text().replace("val_scans = 2\n", "")
    (tmp_path / "plain.toml").write_text(no_validation)
    result = run_cli("bench", "--config", str(tmp_path / "plain.toml"), "--readings", "chosen")
    assert result.exit_code != 0 and "holds out no validation scans to choose on" in result.output


def test_a_plan_of_chosen_readings_lists_only_the_chosen_rows(run_cli, store, tmp_path):
    config = _config(tmp_path, store, {"as trained": [], "threshold 0.9": ["fg_threshold=0.9"]})
    assert run_cli("bench", "--config", str(config), "--split", "validation", "--readings", "all").exit_code == 0
    document = json.loads((tmp_path / "study" / "readings.json").read_text())
    picks = {row["chosen"] for row in document["tables"]["syn_validation"]["rows"]}
    plan = run_cli("bench", "--config", str(config), "--readings", "chosen", "--plan")
    assert plan.exit_code == 0, plan.output
    assert {line[len("reading '"):-2] for line in plan.output.splitlines() if line.startswith("reading '")} == picks
    planned = [int(n) for n in re.findall(r"^(\d+) cells: 0 cached", plan.output, re.M)]
    assert sum(planned) == 4 and len(planned) == len(picks), plan.output  # 2 methods x 2 folds, once each
    partial = run_cli("bench", "--config", str(config), "--readings", "chosen", "--cached")
    assert partial.exit_code != 0 and "no test cell of syn is cached" in " ".join(partial.output.split())

    # a reading added later: --cached shows its column empty and chooses nothing until it is scored
    wider = _config(tmp_path, store, {"as trained": [], "threshold 0.9": ["fg_threshold=0.9"],
                                      "largest component": ["postprocess=largest-component"]})
    under_way = run_cli("bench", "--config", str(wider), "--split", "validation", "--readings", "all", "--cached")
    assert under_way.exit_code == 0, under_way.output
    results = (tmp_path / "study" / "results.md").read_text()
    assert "| largest component |" in results and " | - |" in results and "| chosen |" not in results
    unchosen = run_cli("bench", "--config", str(wider), "--readings", "chosen")
    assert unchosen.exit_code != 0 and "lacks validation cells of some reading or fold" in unchosen.output
    # a fold still to come: each row names the folds its numbers are over, and nothing is chosen
    ahead = run_cli("bench", "--config", str(wider), "--split", "validation", "--readings", "all", "--cached",
                    "--fold", "0", "--fold", "1", "--fold", "2")
    assert ahead.exit_code == 0, ahead.output
    results = (tmp_path / "study" / "results.md").read_text()
    rows = [line for line in results.splitlines() if "(folds 0,1) |" in line]
    assert len(rows) == 2 and "**" not in results and "| chosen |" not in results, results
    assert all(row.endswith(" | - |") and row.count(" ± ") == 2 for row in rows), rows  # the unscored reading: -


def test_the_choice_is_the_highest_mean_and_the_earlier_reading_on_a_tie():
    values = {"a": (50.0, 1.0, 2), "b": (60.0, 2.0, 2), "c": (60.0, 0.5, 2)}
    assert best_reading(values, ["a", "b", "c"], 2) == "b"
    assert best_reading(values, ["a", "c", "b"], 2) == "c"
    assert best_reading({**values, "a": (90.0, 1.0, 1)}, ["a", "b", "c"], 2) is None, "a reading lacks a fold"
    table = ReadingsTable("t", ["a", "b", "c"], {"m": "M"}, {"m": values}, {"m": "b"})
    markdown = table.to_markdown()
    assert "| M | 50.00 ± 1.00 | **60.00 ± 2.00** | 60.00 ± 0.50 | b |" in markdown
    assert markdown.splitlines()[1] == "|---|---:|---:|---:|---|"


def test_chosen_readings_of_both_settings_under_the_all_rule(run_cli, store, tmp_path):
    """``--exclusion all`` is setting 2's rule: the chosen readings' setting-1 table is built too."""
    config = _config(tmp_path, store, {"as trained": [], "threshold 0.9": ["fg_threshold=0.9"]})
    flags = ("--method", "alpnet-init-cpu", "--setting", "1", "--setting", "2", "--exclusion", "all")
    scored = run_cli("bench", "--config", str(config), *flags, "--split", "validation", "--readings", "all")
    assert scored.exit_code == 0, scored.output
    picked = run_cli("bench", "--config", str(config), *flags, "--readings", "chosen")
    assert picked.exit_code == 0, picked.output
    out = tmp_path / "study"
    assert (out / "syn_comparison.json").is_file() and (out / "syn_setting2-all_comparison.json").is_file()
