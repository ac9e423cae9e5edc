"""Results files, tables (markdown / CSV / JSON) and figures, from hand-made fold scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fewshotkit.evaluation.figures import OverlayRow, bar_chart, montage, overlay_figure
from fewshotkit.evaluation.metrics import Counts
from fewshotkit.evaluation.protocol import FoldScores
from fewshotkit.evaluation.results import (
    ScoreTable,
    fold_table,
    folds_of,
    load_results,
    mean_std,
    results_document,
    summarize,
    write_json,
    write_tables,
)


def fold(index: int, liver_tp: int) -> FoldScores:
    scores = FoldScores(index, "s", ("a", "b"), ["liver", "spleen"])
    scores.counts = {
        "liver": {"a": Counts(liver_tp, 100 - liver_tp, 100 - liver_tp), "b": Counts(100, 0, 0)},
        "spleen": {"a": Counts(0, 10, 10), "b": Counts(50, 0, 50)},
    }
    return scores


def test_summary_is_mean_and_sample_std_over_folds():
    folds = [fold(0, 100), fold(1, 50)]
    assert folds[0].per_class() == {"liver": 100.0, "spleen": pytest.approx(100 / 3)}
    assert folds[1].per_class()["liver"] == pytest.approx(75.0)  # (50 + 100) / 2
    s = summarize(folds)
    assert s["liver"][0] == pytest.approx(87.5)
    assert s["liver"][1] == pytest.approx(np.std([100, 75], ddof=1))
    assert s["mean"][0] == pytest.approx(np.mean([folds[0].mean(), folds[1].mean()]))
    assert mean_std([3.0]) == (3.0, 0.0)
    assert np.isnan(mean_std([])[0])


def test_results_document_round_trip(tmp_path):
    folds = [fold(0, 100), fold(1, 50)]
    doc = results_document(folds, protocol={"name": "roy"}, seed=3, device="cpu", spec={"method": "x"},
                           plugin_versions={"alp": "0.1"}, git_commit="abc")
    path = write_json(tmp_path / "r.json", doc)
    back = load_results(path)
    assert back["seed"] == 3 and back["git_commit"] == "abc" and back["protocol"]["name"] == "roy"
    assert back["summary"]["dice"]["liver"]["mean"] == pytest.approx(87.5)
    assert back["folds"][0]["per_scan"]["liver"]["a"]["dice"] == pytest.approx(100.0)
    assert [f.per_class() for f in folds_of(back)] == [f.per_class() for f in folds]
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_tables_in_three_formats(tmp_path):
    folds = [fold(0, 100), fold(1, 50)]
    table = fold_table(folds)
    md = table.to_markdown()
    assert md.splitlines()[0] == "| fold | liver | spleen | mean |"
    assert "| mean ± std | 87.50 ± 17.68 |" in md
    csv_text = table.to_csv()
    assert csv_text.splitlines()[0] == "fold,liver,liver_std,spleen,spleen_std,mean,mean_std"
    assert csv_text.splitlines()[1].startswith("fold 0,100.0000,,")
    files = write_tables(table, tmp_path / "t")
    assert sorted(p.name for p in files) == ["t.csv", "t.json", "t.md"]
    assert json.loads((tmp_path / "t.json").read_text())["rows"][2]["label"] == "mean ± std"


def test_figures_are_written(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(6, 32, 32)).astype(np.float32)
    truth = np.zeros((6, 32, 32), bool)
    truth[2:5, 8:20, 8:20] = True
    pred = np.roll(truth, 3, axis=2)
    rows = [OverlayRow("liver", image[3], truth[3], pred[3]), OverlayRow("spleen", image[2], None, pred[2])]
    for path in (overlay_figure(rows, tmp_path / "o.png"), montage(image, pred, tmp_path / "m.png", truth=truth)):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = ScoreTable("t", ["liver", "mean"])
    table.add("A", {"liver": (60.0, 5.0), "mean": (60.0, 5.0)})
    table.add("B", {"liver": (20.0, None), "mean": (float("nan"), None)})
    assert bar_chart(table, tmp_path / "b.png").stat().st_size > 1000
    assert "| B | 20.00 | - |" in table.to_markdown()
