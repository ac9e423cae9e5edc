"""The evaluation layer refuses bad input early, in one line that names the option and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.evaluate import EvalRun, evaluate_predictor
from fewshotkit.evaluation.options import InferenceOptions
from fewshotkit.evaluation.postprocess import ScanPostprocess, check_drop_absent
from fewshotkit.evaluation.protocol import evaluate_fold, support_positions
from fewshotkit.evaluation.results import fold_table, load_results, results_document
from test_protocol import Fold, make_store


def _nothing(support_images, support_masks, query_images):
    return np.zeros(query_images.shape, bool)


def test_an_unknown_split_is_refused_before_anything_is_scored():
    with pytest.raises(FewshotkitError, match=r"split \(--split\) must be one of test, validation, got 'val'"):
        EvalRun(split="val")
    assert EvalRun(split="validation").split == "validation"


def test_classes_named_twice_keep_the_order_they_were_first_named_in():
    store = make_store()
    outputs = evaluate_predictor(store, _nothing, [Fold(0, ("a",), "s")], classes=["dot", "liver", 2])
    assert outputs.folds[0].classes == ["dot", "liver"]


def test_search_without_probabilities_is_refused_before_a_query_is_read():
    store = make_store()
    read = []
    image = store.image
    store.image = lambda volume, z=None: read.append(volume) or image(volume, z)  # type: ignore[method-assign]
    with pytest.raises(FewshotkitError, match=r"support_orientation=as-is"):
        evaluate_fold(store, Fold(0, ("a", "b"), "s"), _nothing,
                      options=InferenceOptions(support_orientation="search"))
    assert "a" not in read and "b" not in read


@pytest.mark.parametrize("fraction", ["0.1", True, [0.1]])
def test_drop_absent_of_the_wrong_type_is_a_one_line_error(fraction):
    with pytest.raises(FewshotkitError, match="drop_absent .* null to turn it off"):
        check_drop_absent(fraction)  # type: ignore[arg-type]
    with pytest.raises(FewshotkitError, match="drop_absent"):
        ScanPostprocess([], [], fraction)  # type: ignore[arg-type]
    check_drop_absent(np.float32(0.5))  # a numpy number is a number


def test_a_predictor_batch_size_below_one_is_refused():
    from fewshotkit.evaluation.inference import MethodPredictor

    with pytest.raises(FewshotkitError, match=r"batch_size \(--batch-size\) must be a whole number >= 1, got 0"):
        MethodPredictor(object(), 32, batch_size=0)
    assert MethodPredictor(object(), 32, batch_size=np.int64(4)).batch_size == 4


def test_support_positions_refuse_zero_chunks():
    with pytest.raises(ValueError, match=r"chunks \(--chunks\) must be >= 1"):
        support_positions(10, 0)


def test_a_predictor_of_the_wrong_shape_is_told_what_to_return():
    store = make_store()
    with pytest.raises(FewshotkitError, match="one mask per query slice"):
        evaluate_fold(store, Fold(0, ("a",), "s"), lambda s, m, q: np.zeros((1, 8, 8), bool), classes=[1])


def test_tables_and_results_of_no_fold_are_one_line_errors():
    with pytest.raises(FewshotkitError, match="evaluate at least one fold"):
        fold_table([])
    with pytest.raises(FewshotkitError, match="evaluate at least one fold"):
        results_document([], protocol={}, git_commit="abc")


def test_a_damaged_results_file_names_the_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"folds": [{"fold": 0, "support": "s"}]}))
    with pytest.raises(FewshotkitError, match=f"results file '{path}' has a damaged fold"):
        load_results(path)
    path.write_text(json.dumps({"folds": {}}))
    with pytest.raises(FewshotkitError, match="fewshotkit eval -o"):
        load_results(path)


def test_curves_refuse_an_unknown_protocol(tmp_path, run_cli):
    result = run_cli("curves", str(tmp_path), "--protocol", "roi", "-o", str(tmp_path / "c.png"))
    assert result.exit_code == 2 and "--protocol" in result.output and "'roi'" in result.output
