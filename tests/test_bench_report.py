"""bench's report pieces on hand-made fold scores and timings: the Dice-per-fold table, the
per-method training time and results.md."""

from __future__ import annotations

from fewshotkit.apps.bench.report import method_times, per_fold, precision_recall, write_report
from fewshotkit.evaluation.fold_scores import FoldScores
from fewshotkit.evaluation.metrics import Counts


def _fold(index: int, tp_a: int, tp_b: int) -> FoldScores:
    """Two classes, one query scan each; Dice = tp / (tp + 5) with fp + fn = 10."""
    return FoldScores(index, "s", ("q",), ["a", "b"],
                      counts={"a": {"q": Counts(tp=tp_a, fp=5, fn=5)}, "b": {"q": Counts(tp=tp_b, fp=5, fn=5)}})


def test_per_fold_table_pairs_each_fold_and_protocol(tmp_path):
    cells = {"roy": {"m1": [_fold(0, 5, 15), _fold(3, 45, 45)], "m2": [_fold(0, 95, 95), _fold(3, 5, 5)]},
             "full-volume": {"m1": [_fold(0, 5, 5), _fold(3, 15, 15)], "m2": [_fold(0, 45, 45), _fold(3, 95, 95)]}}
    table = per_fold(cells, ["one", "two"])
    assert table is not None
    assert table.columns == ["roy: fold 0", "roy: fold 3", "full-volume: fold 0", "full-volume: fold 3"]
    rows = dict(table.rows)
    assert [round(mean, 2) for mean, _ in rows["one"]] == [62.5, 90.0, 50.0, 75.0]  # (50 + 75) / 2, ...
    assert [round(mean, 2) for mean, _ in rows["two"]] == [95.0, 50.0, 90.0, 95.0]
    assert all(std is None for _, std in rows["one"])

    assert per_fold({"roy": {"m1": [_fold(0, 5, 5)]}}, ["one"]) is None, "one fold: no table"

    report = write_report(tmp_path / "results.md", {"k": table}, {}, "fewshotkit bench ...",
                          {"k": [precision_recall(cells, ["one", "two"]), table]}).read_text()
    assert "Precision / recall (%), mean over classes:" in report
    assert "Dice per fold (%), mean over classes:" in report
    assert "| one | 62.50 | 90.00 | 50.00 | 75.00 |" in report


def _cell(method: str, fold: int, protocol: str, cpu_seconds: float, pseudolabels: str = "felzenszwalb") -> dict:
    return {"method": method, "fold": fold, "protocol": protocol, "pseudolabels": pseudolabels,
            "models": [{"steps": 2000, "train_seconds": cpu_seconds + 60, "train_cpu_seconds": cpu_seconds}]}


def test_method_times_count_each_model_once_and_name_every_method(tmp_path):
    cells = [_cell("A", 0, "roy", 600), _cell("A", 0, "full-volume", 600), _cell("A", 1, "roy", 1200),
             _cell("B", 0, "roy", 3000), {"method": "init", "fold": 0, "protocol": "roy", "models": [{"steps": 0}]}]
    assert method_times(cells) == "CPU time per model, mean over folds: A 15.0 min; B 50.0 min."
    assert method_times(cells[:3]) is None, "one method: the budget line says it all"
    two_sets = [_cell("A", 0, "roy", 600), _cell("A", 0, "roy", 1200, "slic")]
    assert method_times(two_sets) == "CPU time per model, mean over folds: A + felzenszwalb 10.0 min; A + slic 20.0 min."

    table = per_fold({"roy": {"A": [_fold(0, 5, 5), _fold(1, 5, 5)]}}, ["A"])
    assert table is not None
    report = write_report(tmp_path / "results.md", {"k": table}, {"k": cells}, None).read_text()
    assert "\nCPU time per model, mean over folds: A 15.0 min; B 50.0 min.\n" in report


def test_the_timing_names_the_hardware_each_run_recorded(tmp_path):
    import json

    from fewshotkit.apps.bench.report import model_timing, timing_note

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"final_step": 20, "train_seconds": 60.0, "train_cpu_seconds": 58.0,
                                              "device_name": "cpu", "cpu": "Some CPU, no bfloat16 units",
                                              "threads": 1}))
    timing = model_timing(run, 20)
    assert timing["hardware"] == "Some CPU, no bfloat16 units, 1 thread"
    gpu = {**timing, "hardware": "cuda: Some GPU, 8 threads"}
    note = timing_note([{"method": "A", "fold": 0, "models": [timing]}, {"method": "A", "fold": 1, "models": [gpu]}])
    assert note.endswith(" Trained on Some CPU, no bfloat16 units, 1 thread; cuda: Some GPU, 8 threads.")
    older = {k: v for k, v in timing.items() if k != "hardware"}
    assert "Trained on" not in timing_note([{"method": "A", "fold": 0, "models": [older]}]), "older runs name none"
    mixed = timing_note([{"method": "A", "fold": 0, "models": [timing]}, {"method": "A", "fold": 1, "models": [older]}])
    assert mixed.endswith(" Trained on Some CPU, no bfloat16 units, 1 thread (1 of 2 models recorded it).")
