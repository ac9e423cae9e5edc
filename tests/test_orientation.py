"""Support orientation search: the quarter turn of the support chosen per query scan by cycle
consistency, in the protocol, in segment_volume and as a spec option."""

from __future__ import annotations

import numpy as np
import pytest

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.options import InferenceOptions
from fewshotkit.evaluation.orientation import _round_trip, search_turns, turn


class Striped:
    """Finds the pixels whose horizontal intensity step equals the support organ's: a feature bound
    to the orientation, like a trained model's (a ramp along x has step 1, along y step 0)."""

    def probabilities(self, support_images, support_masks, query_images):
        step = np.diff(support_images, axis=-1, append=support_images[..., -1:])
        target = float(np.median(step[np.asarray(support_masks, bool)]))
        found = np.diff(query_images, axis=-1, append=query_images[..., -1:])
        return (np.isclose(found, target) & (target != 0)).astype(np.float32)

    def __call__(self, support_images, support_masks, query_images):
        return self.probabilities(support_images, support_masks, query_images) > 0.5


def _scan(depth: int = 12, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(image, label) (Z, size, size): organ 1 on z 2..9, rows 4..11, columns 3..10, whose intensity
    rises by 1 per column (the last column's step is 0, so it is not found)."""
    label = np.zeros((depth, size, size), np.uint8)
    label[2:10, 4:12, 3:11] = 1
    image = np.where(label == 1, np.arange(size, dtype=np.float32)[None, None, :], -5.0).astype(np.float32)
    return image, label


def test_cycle_score_and_choice_undo_a_turned_support():
    image, label = _scan()
    chunk = (image[4:6], label[4:6] == 1, image[3:8])
    assert _round_trip(Striped(), *chunk)[0] > 0.8  # the support segmented back from the query: its Dice
    turned = (turn(chunk[0], 1), turn(chunk[1], 1), chunk[2])  # the support lies turned by 90 degrees
    assert _round_trip(Striped(), *turned)[0] == 0.0
    assert search_turns(Striped(), [turned])[0] == 3, "three more quarter turns bring it back"
    assert search_turns(Striped(), [chunk])[0] == 0, "an aligned support stays as it is"
    with pytest.raises(FewshotkitError, match="probabilities"):
        search_turns(lambda s, m, q: q > 0, [chunk])


class Picky(Striped):
    """Striped, refusing (as RPT does with more regions than foreground pixels) any support mask with
    fewer than ``least`` foreground pixels."""

    def __init__(self, least: int) -> None:
        self.least, self.supports = least, []

    def probabilities(self, support_images, support_masks, query_images):
        sizes = np.asarray(support_masks, bool).sum(axis=(1, 2))
        self.supports.append(sizes.tolist())
        if (sizes < self.least).any():
            raise FewshotkitError(f"a support mask has {sizes.min()} foreground pixels, fewer than {self.least}")
        return super().probabilities(support_images, support_masks, query_images)


def test_a_back_prediction_the_method_refuses_drops_the_smallest_predicted_slices():
    image, label = _scan()
    image[7, :, 3:9] = -5.0  # on query slice 7 the model finds one column of the organ (8 pixels)
    chunk = (image[4:6], label[4:6] == 1, image[3:8])
    picky = Picky(least=20)
    score = _round_trip(picky, *chunk)[0]
    assert picky.supports == [[64, 64], [56, 56, 56, 56, 8], [56, 56, 56, 56]], "slice 7 left out, the rest kept"
    assert score == _round_trip(Striped(), chunk[0], chunk[1], image[3:7])[0] > 0.8
    assert _round_trip(Picky(least=60), *chunk)[0] == 0.0, "every predicted slice refused: the turn backs nothing"
    with pytest.raises(FewshotkitError, match="fewer than 100"):
        _round_trip(Picky(least=100), *chunk)  # the real support refused: the method's settings are wrong


def test_segment_volume_searches_the_supports_orientation():
    from fewshotkit.evaluation.scan import segment_volume

    image, label = _scan()
    sup_image, sup_label = turn(image, 1), turn(label, 1)
    plain = segment_volume(Striped(), sup_image, sup_label, image, [1], options=InferenceOptions(query_range=(2, 9)))
    assert plain.support_turns == 0 and not plain.labels.any()
    found = segment_volume(Striped(), sup_image, sup_label, image, [1],
                           options=InferenceOptions(query_range=(2, 9), support_orientation="search"))
    assert found.support_turns == 3
    assert found.labels[2:10, 4:12, 3:10].all() and found.labels.sum() == 8 * 8 * 7
    with pytest.raises(FewshotkitError, match="'support_orientation' must be one of"):
        segment_volume(Striped(), sup_image, sup_label, image, [1], options=InferenceOptions(support_orientation="auto"))


def test_protocol_records_the_turn_per_query_scan():
    from fewshotkit.evaluation.protocol import FoldScores, evaluate_fold
    from test_protocol import Fold, MemoryStore

    image, label = _scan()
    store = MemoryStore({"s": turn(image, 1), "a": image, "b": image[::-1].copy()},
                        {"s": turn(label, 1), "a": label, "b": label[::-1].copy()}, {1: "organ"})
    fold = Fold(0, ("a", "b"), "s")
    plain = evaluate_fold(store, fold, Striped(), protocol="roy")
    assert plain.mean() == 0.0 and not plain.support_turns
    found = evaluate_fold(store, fold, Striped(), protocol="roy", options=InferenceOptions(support_orientation="search"))
    assert found.support_turns == {"a": 3, "b": 3} and found.mean() > 90
    assert FoldScores.from_json(found.to_json()).support_turns == {"a": 3, "b": 3}


def test_a_support_aware_postprocessor_sees_the_support_turned_as_the_search_chose():
    """nearest-to-support compares positions in the query's frame: it must be handed the support's
    mask in the orientation the search chose, not as it lies in the store."""
    from fewshotkit.evaluation.postprocess import ScanPostprocess
    from fewshotkit.evaluation.protocol import evaluate_fold
    from test_protocol import Fold, MemoryStore

    image, label = _scan()
    store = MemoryStore({"s": turn(image, 1), "a": image}, {"s": turn(label, 1), "a": label}, {1: "organ"})
    seen: list[np.ndarray] = []

    class Spy:
        uses_support = True

        def __call__(self, mask, spacing=None, support=None):
            seen.append(support)
            return mask

    evaluate_fold(store, Fold(0, ("a",), "s"), Striped(), protocol="roy",
                  options=InferenceOptions(postprocess=ScanPostprocess(steps=[("spy", Spy())]),
                                           support_orientation="search"))
    assert len(seen) == 1 and np.array_equal(seen[0], label == 1), "three more quarter turns: the query's frame"


def test_estimated_range_search_never_reads_the_querys_label(monkeypatch):
    """Under estimated-range the search's chunks come from the support alone: a class the query's
    label lacks is searched all the same (one label voxel more or less changes nothing)."""
    import fewshotkit.evaluation.protocol as protocol
    from test_protocol import Fold, MemoryStore

    searched: list[int] = []

    def spy(predictor, chunks):
        searched.append(len(chunks))
        return search_turns(predictor, chunks)

    monkeypatch.setattr(protocol, "search_turns", spy)
    image, label = _scan()
    support_label = label.copy()
    support_label[3:8, 12:14, 12:14] = 2
    for query_label in (label, np.where(np.arange(label.size).reshape(label.shape) == 0, 2, label)):
        store = MemoryStore({"s": image, "a": image.copy()}, {"s": support_label, "a": query_label.astype(np.uint8)},
                            {1: "organ", 2: "other"})
        protocol.evaluate_fold(store, Fold(0, ("a",), "s"), Striped(), protocol="estimated-range",
                               options=InferenceOptions(support_orientation="search"))
    assert searched[0] == searched[1] == 6, "3 chunks of each of the support's 2 classes, whatever the query's label"


def test_spec_option_and_inference_override():
    from fewshotkit.method.overrides import apply_inference_overrides
    from fewshotkit.method.spec import dump_spec, preset_spec
    from fewshotkit.method.build import parse_spec

    spec = preset_spec("ssl-alpnet-cpu")
    assert spec.support_orientation == "as-is" and "support_orientation" not in spec.to_dict()
    searched = apply_inference_overrides(spec, ["support_orientation=search"])
    assert searched.support_orientation == "search"
    assert parse_spec(dump_spec(searched)).support_orientation == "search"
    with pytest.raises(FewshotkitError, match="'support_orientation' must be one of as-is, search"):
        apply_inference_overrides(spec, ["support_orientation=sideways"])


def test_bench_keeps_the_turns_when_it_merges_class_groups():
    from fewshotkit.apps.bench.cell_file import merge_groups
    from fewshotkit.evaluation.protocol import FoldScores

    parts = [FoldScores(0, "s", ("a", "b"), ["RV"], support_turns={"a": 1, "b": 0}),
             FoldScores(0, "s", ("a", "b"), ["LV"], support_turns={"a": 1, "b": 3})]
    merged = merge_groups(parts, ["RV", "LV"], ["upper", "lower"])  # setting 2: one model, one search per group
    assert merged.support_turns == {"a (upper)": 1, "b (upper)": 0, "a (lower)": 1, "b (lower)": 3}
    assert merge_groups(parts[1:], ["LV"], ["all"]).support_turns == {"a": 1, "b": 3}  # one model: the scans alone


def test_segment_volume_reuses_the_searchs_prediction(monkeypatch):
    import fewshotkit.evaluation.scan as scan
    class Counting(Striped):
        calls = 0

        def probabilities(self, support_images, support_masks, query_images):
            Counting.calls += 1
            return super().probabilities(support_images, support_masks, query_images)

    def search_then_count(predictor, chunks):
        result = search_turns(predictor, chunks)
        Counting.calls = 0  # from here on, every call would be a second prediction
        return result

    monkeypatch.setattr(scan, "search_turns", search_then_count)
    image, label = _scan()
    sup_image, sup_label = turn(image, 1), turn(label, 1)
    found = scan.segment_volume(Counting(), sup_image, sup_label, image, [1],
                                options=InferenceOptions(query_range=(2, 9), support_orientation="search"))
    assert found.support_turns == 3 and Counting.calls == 0, "no forward pass after the search"
    plain = scan.segment_volume(Counting(), turn(sup_image, 3), turn(sup_label, 3), image, [1],
                                options=InferenceOptions(query_range=(2, 9)))
    assert np.array_equal(found.labels, plain.labels) and plain.labels.any()
