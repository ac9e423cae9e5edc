"""Setting 2's two exclusion rules: SSL-ALPNet's ``any`` and Q-Net's, RPT's and GMRD's ``all``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import pseudolabelled_store
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.data.episodes.filters import allowed_slices


class SliceIndex:
    """The three methods ``allowed_slices`` reads, over one 6-slice volume: class 1 on slices 0-3,
    class 2 on slices 2-5, so slices 2 and 3 show both."""

    classes = {1: "liver", 2: "spleen"}

    def class_value(self, name: int | str) -> int:
        return name if isinstance(name, int) else {v: k for k, v in self.classes.items()}[name]

    def class_slices(self, value: int, volume: str) -> np.ndarray:
        return np.arange(0, 4) if value == 1 else np.arange(2, 6)

    def shape(self, volume: str) -> tuple[int, int, int]:
        return (6, 8, 8)


def test_the_two_rules_drop_the_slices_their_definitions_name():
    index = SliceIndex()
    assert [z for _, z in allowed_slices(index, ["a"], [1, 2], "any")] == []  # every slice shows one of them
    assert [z for _, z in allowed_slices(index, ["a"], [1, 2], "all")] == [0, 1, 4, 5]  # 2, 3 show both
    for rule in ("any", "all"):  # one class: the rules agree
        assert [z for _, z in allowed_slices(index, ["a"], ["liver"], rule)] == [4, 5]
        assert [z for _, z in allowed_slices(index, ["a"], [], rule)] == [0, 1, 2, 3, 4, 5]
    with pytest.raises(FewshotkitError, match="--exclusion must be one of any, all"):
        allowed_slices(index, ["a"], [1], "some")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return pseudolabelled_store(tmp_path_factory.mktemp("rule") / "syn.h5", min_size=100, volumes=6, seed=0,
                                slices=12, size=64)


def test_train_records_the_rule_and_keeps_more_slices_with_all(run_cli, store, tmp_path):
    counts = {}
    for rule in ("any", "all"):
        result = run_cli("train", "--preset", "alpnet-init-cpu", "--store", str(store), "--out", str(tmp_path / rule),
                         "--setting", "2", "--exclude", "liver,spleen", "--exclusion", rule, "--device", "cpu",
                         "--steps", "0", "--regime", "supervised")
        assert result.exit_code == 0, result.output
        run = json.loads((tmp_path / rule / "run.json").read_text())
        assert run["exclusion"] == rule and run["exclude"] == ["liver", "spleen"]
        counts[rule] = run["train_slices"]
    assert counts["all"] > counts["any"]


def test_exclusion_with_setting_1_is_a_one_line_error(run_cli, store, tmp_path):
    result = run_cli("train", "--preset", "alpnet-init-cpu", "--store", str(store), "--out", str(tmp_path / "r"),
                     "--exclusion", "all", "--steps", "0")
    assert result.exit_code != 0 and "--exclusion all applies to setting 2 only" in result.output
    assert len(result.output.strip().splitlines()) == 1
    bench = run_cli("bench", "--store", str(store), "--method", "alpnet-init", "--exclusion", "all",
                    "-o", str(tmp_path / "b"))
    assert bench.exit_code != 0 and "--exclusion all applies to setting 2 only" in bench.output


def test_bench_names_the_rule_in_its_table_and_keeps_its_cells_apart(run_cli, store, tmp_path):
    out = tmp_path / "bench"
    for rule in ("any", "all"):
        result = run_cli("bench", "--store", str(store), "--method", "alpnet-init", "--recipe", "cpu",
                         "--device", "cpu", "--fold", "0", "--setting", "2", "--exclusion", rule, "-o", str(out))
        assert result.exit_code == 0, result.output
    assert "setting 2 (exclusion any)" in (out / "syn_setting2_comparison.md").read_text()
    assert "setting 2 (exclusion all)" in (out / "syn_setting2-all_comparison.md").read_text()
    assert (out / "cells" / "syn_setting2").is_dir() and (out / "cells" / "syn_setting2-all").is_dir()


def test_eval_of_a_setting_2_run_names_its_rule(run_cli, store, tmp_path):
    run = tmp_path / "all"
    assert run_cli("train", "--preset", "alpnet-init-cpu", "--store", str(store), "--out", str(run), "--setting", "2",
                   "--exclude", "liver,spleen", "--exclusion", "all", "--device", "cpu", "--steps", "0",
                   "--regime", "supervised").exit_code == 0
    result = run_cli("eval", str(run), "--store", str(store), "--fold", "0", "--class", "liver", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "setting 2 (exclusion all)" in result.output
