"""Validation scans held out of a fold's training scans: never trained on, scored by the
Dice-vs-time curve, eval --split validation and bench --split validation instead of the test scans."""

from __future__ import annotations

import json

import pytest

from conftest import pseudolabelled_store
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.data.episodes.folds import Fold, hold_out, make_folds, validation_fold, validation_order


def test_hold_out_takes_whole_patients_from_the_end_of_the_training_scans():
    fold = Fold(0, ("q1",), "s", ("a1", "a2", "b1", "c1", "c2"))
    patients = {"a1": "a", "a2": "a", "b1": "b", "c1": "c", "c2": "c"}
    held = hold_out(fold, 2, patients)  # c's two scans are enough scans but one patient: b joins
    assert held.validation == ("b1", "c1", "c2") and held.train == ("a1", "a2")
    check = validation_fold(held)
    assert (check.support, check.queries, check.train) == ("b1", ("c1", "c2"), ("a1", "a2"))
    assert not set(held.validation) & {*held.train, *held.queries, held.support}
    assert hold_out(fold, 0) == fold


def test_a_validation_support_never_segments_its_own_patients_scans():
    """Two frames per patient (as ACDC): the support's other frame is held out but never a query."""
    fold = Fold(0, ("q1",), "s", ("a1", "a2", "b1", "b2", "c1", "c2"))
    patients = {scan: scan[0] for scan in fold.train}
    check = validation_fold(hold_out(fold, 4, patients))
    assert check.support == "b1" and check.queries == ("c1", "c2")


def test_next_fold_gives_every_fold_its_own_validation_patients_and_end_keeps_the_old_ones():
    scans = [f"p{i:02d}" for i in range(20)]
    folds = make_folds(scans, 5)
    nexts = [hold_out(f, 2, order=validation_order(folds, f.index, "next-fold")) for f in folds]
    for k, held in enumerate(nexts):
        assert set(held.validation) <= set(folds[(k + 1) % 5].queries), "the next fold's query block"
        assert held.train == tuple(s for s in folds[k].train if s not in held.validation), "training order kept"
    assert len({held.validation for held in nexts}) == 5
    ends = [hold_out(f, 2, order=validation_order(folds, f.index, "end")) for f in folds]
    assert ends == [hold_out(f, 2) for f in folds]
    assert len({held.validation for held in ends[:4]}) == 1, "the end of the list: one pair for folds 0-3"
    with pytest.raises(FewshotkitError, match="--val-from 'middle': choose one of next-fold, end"):
        validation_order(folds, 0, "middle")
    from fewshotkit.cli.options import VAL_FROM_CHOICES
    from fewshotkit.data.episodes.folds import VAL_FROM

    assert VAL_FROM_CHOICES == VAL_FROM, "the command line offers every rule"


def test_the_rule_enters_the_models_key_only_when_it_is_not_the_one_older_cells_used(store):
    from fewshotkit.apps.bench.cache import training_key
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training.setup import RunChoices

    spec = preset_spec("alpnet-init-cpu")
    common = dict(steps=0, seed=0, setting=1, fold=0, n_folds=5, pseudolabels=None, regime="supervised", val_scans=2)
    older = training_key(spec, store, **common, val_from="end")
    assert "val_from" not in older
    assert training_key(spec, store, **common, val_from="next-fold") == {**older, "val_from": "next-fold"}
    recorded = {"fold": 0, "setting": 1, "seed": 0, "exclude": "", "regime": "ssl", "steps": 2, "val_scans": 2}
    assert RunChoices().resumed(recorded).val_from == "end", "a run from before the rule resumes as it began"
    assert RunChoices().resumed({**recorded, "val_from": "next-fold"}).val_from == "next-fold"


def test_eval_of_a_run_that_predates_the_rule_normalises_with_its_own_training_scans(store):
    from fewshotkit.data.episodes.folds import get_fold
    from fewshotkit.data.store.reader import SliceStore
    from fewshotkit.evaluation.evaluate import _scored_folds

    with SliceStore(store) as opened:
        for rule, recorded in (("end", {}), ("next-fold", {"val_from": "next-fold"})):
            trained = get_fold(opened, 0, 5, 2, rule)
            run = {"fold": 0, "val_scans": 2, "fold_train": list(trained.train), **recorded}
            assert _scored_folds(opened, [0], 5, run, "ckpt", "test")[0].train == trained.train
        assert get_fold(opened, 0, 5, 2, "end").train != get_fold(opened, 0, 5, 2, "next-fold").train


def test_hold_out_refuses_what_cannot_be_scored_or_trained():
    fold = make_folds([str(i) for i in range(10)], 5)[0]
    with pytest.raises(FewshotkitError, match="--val-scans 1: hold out at least 2"):
        hold_out(fold, 1)
    with pytest.raises(FewshotkitError, match="cannot give two validation patients and keep one"):
        hold_out(fold, len(fold.train))
    with pytest.raises(FewshotkitError, match="cannot give two validation patients"):
        hold_out(Fold(0, ("q",), "s", ("a1", "a2", "b1")), 2, {"a1": "a", "a2": "a", "b1": "b"})
    with pytest.raises(FewshotkitError, match="no validation scans: train with --val-scans"):
        validation_fold(fold)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return pseudolabelled_store(tmp_path_factory.mktemp("val") / "syn.h5", min_size=100, volumes=8, seed=0,
                                slices=12, size=64)


TINY = ["--set", "image_size=64", "--set", "backbone.width=8", "--set", "backbone.out_channels=32",
        "--set", "backbone.output_stride=8", "--set", "training.batch_size=2"]


def test_a_run_never_trains_on_its_validation_scans_and_its_curve_scores_them(run_cli, store, tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "--preset", "ssl-alpnet-cpu", "--store", str(store), "--out", str(run),
                     "--val-scans", "2", "--steps", "2", "--eval-every", "2", "--device", "cpu", "--log-episodes", *TINY)
    assert result.exit_code == 0, result.output
    record = json.loads((run / "run.json").read_text())
    validation = record["fold_validation"]
    assert record["val_scans"] == 2 and record["val_from"] == "next-fold" and len(validation) == 2
    assert record["cpu"].endswith("bfloat16 units") and record["threads"] >= 1
    assert not set(validation) & set(record["fold_train"])
    assert not set(validation) & {*record["fold_queries"], record["fold_support"]}
    episodes = [json.loads(line) for line in (run / "episodes.jsonl").read_text().splitlines()]
    assert episodes and {e["volume"] for e in episodes} <= set(record["fold_train"])  # what was drawn
    curve = [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()]
    assert curve and all(c["split"] == "validation" for c in curve)

    scored = run_cli("eval", str(run), "--store", str(store), "--split", "validation", "--device", "cpu",
                     "-o", str(tmp_path / "val.json"))
    assert scored.exit_code == 0, scored.output
    document = json.loads((tmp_path / "val.json").read_text())
    assert document["protocol"]["split"] == "validation"
    scored_fold = document["folds"][0]
    assert scored_fold["support"] == validation[0] and scored_fold["queries"] == validation[1:]
    assert "the run's validation scans" in " ".join(scored.output.split())


def test_eval_split_validation_needs_a_run_with_validation_scans(run_cli, store, tmp_path):
    run = tmp_path / "plain"
    assert run_cli("train", "--preset", "alpnet-init-cpu", "--store", str(store), "--out", str(run), "--steps", "0",
                   "--regime", "supervised", "--device", "cpu").exit_code == 0
    result = run_cli("eval", str(run), "--store", str(store), "--split", "validation", "--device", "cpu")
    assert result.exit_code != 0 and "was trained without validation scans" in result.output


def test_bench_scores_and_names_the_validation_scans(run_cli, store, tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--store", str(store), "--method", "alpnet-init", "--recipe", "cpu", "--device", "cpu",
            "--fold", "0", "--val-scans", "2", "-o", str(out)]
    assert run_cli(*args, "--split", "validation").exit_code == 0
    assert run_cli(*args).exit_code == 0
    validation = (out / "syn_validation_comparison.md").read_text()
    test = (out / "syn_comparison.md").read_text()
    assert "the validation scans (2 held out of each fold's training scans)" in validation
    assert "trained without 2 validation scans" in test
    bad = run_cli("bench", "--store", str(store), "--method", "alpnet-init", "--split", "validation", "-o", str(out))
    assert bad.exit_code != 0 and "give --val-scans N" in bad.output


def test_resume_refuses_a_run_json_or_spec_that_no_longer_matches_its_checkpoint(run_cli, store, tmp_path):
    run = tmp_path / "edited"
    assert run_cli("train", "--preset", "ssl-alpnet-cpu", "--store", str(store), "--out", str(run), "--steps", "2",
                   "--device", "cpu", *TINY).exit_code == 0
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "seed": 5}))
    result = run_cli("train", "--resume", str(run), "--steps", "3", "--device", "cpu")
    assert result.exit_code != 0 and "run.json' no longer matches its last checkpoint (seed differ)" in result.output
    (run / "run.json").write_text(json.dumps(record))
    spec = (run / "spec.toml").read_text()
    (run / "spec.toml").write_text(spec.replace("bg_weight = 0.05", "bg_weight = 0.5"))
    result = run_cli("train", "--resume", str(run), "--steps", "3", "--device", "cpu")
    assert result.exit_code != 0 and "spec.toml' no longer matches the spec its last checkpoint" in result.output
    (run / "spec.toml").write_text(spec)
    assert run_cli("train", "--resume", str(run), "--steps", "3", "--device", "cpu").exit_code == 0
