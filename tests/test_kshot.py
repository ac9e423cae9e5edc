"""k-shot and chunking edge cases of the protocol with hand-computed answers (no model): the tie
rule, chunk counts other than 3, organs shorter than the chunk count, too few support slices, the
range estimate at exactly .5 and the metrics of empty masks."""

from __future__ import annotations

import numpy as np
import pytest

from fewshotkit.core.errors import DataError
from fewshotkit.evaluation.metrics import Counts, confusion
from fewshotkit.evaluation.options import InferenceOptions
from fewshotkit.evaluation.protocol import (
    assign_chunks,
    evaluate_fold,
    query_chunks,
    select_support,
    support_positions,
)
from fewshotkit.evaluation.query_range import estimate_range, plan_query
from test_protocol import Fold, MemoryStore

# ten class slices with gaps, so list positions and z values differ
ZS = [3, 4, 6, 7, 9, 10, 12, 13, 15, 16]


def test_two_shots_break_ties_towards_the_lower_position():
    # n = 10, C = 3: centres 1, 5, 8; the second-nearest position is a tie (centre - 1 vs centre + 1)
    assert support_positions(10, 3) == [1, 5, 8]
    assert select_support(ZS, 3, 2) == [[3, 4], [9, 10], [13, 15]]  # positions {0, 1}, {4, 5}, {7, 8}
    assert select_support(ZS, 3, 3) == [[3, 4, 6], [9, 10, 12], [13, 15, 16]]
    # 4 shots: the tie at distance 2 goes to the lower position too (centre 5: 3 before 7)
    assert select_support(ZS, 3, 4) == [[3, 4, 6, 7], [7, 9, 10, 12], [12, 13, 15, 16]]
    assert select_support(list(reversed(ZS)), 3, 2) == [[3, 4], [9, 10], [13, 15]], "any order in, sorted out"
    assert select_support(ZS, 3, 10) == [ZS] * 3


def test_chunk_counts_other_than_three():
    assert support_positions(10, 1) == [5]
    assert support_positions(10, 2) == [2, 7]  # int(10/4), int(30/4)
    assert support_positions(10, 4) == [1, 3, 6, 8]  # int(10/8), int(30/8), int(50/8), int(70/8)
    assert support_positions(10, 5) == [1, 3, 5, 7, 9]
    assert select_support(ZS, 2, 2) == [[4, 6], [12, 13]]  # centre 2: {2, 1}; centre 7: {7, 6}
    assert select_support(ZS, 4, 1) == [[4], [7], [12], [15]]
    assert [r.tolist() for r in query_chunks([2, 12], 4)] == [[2, 3, 4], [5, 6, 7], [8, 9, 10], [11, 12]]
    assert [r.tolist() for r in query_chunks([2, 12], 1)] == [list(range(2, 13))]
    assert assign_chunks(14, [2, 12], 2, "full-volume").tolist() == [0] * 8 + [1] * 6


def test_an_organ_shorter_than_the_chunk_count():
    # support: 2 class slices, 3 chunks -> positions 0, 1, 1; one slice -> 0, 0, 0
    assert support_positions(2, 3) == [0, 1, 1]
    assert select_support([8, 5], 3, 1) == [[5], [8], [8]]
    assert select_support([4], 3, 1) == [[4], [4], [4]]
    assert select_support([8, 5], 3, 2) == [[5, 8]] * 3
    # query: 2 class slices in 3 chunks -> one slice each for chunks 0 and 1, none for chunk 2
    assert [r.tolist() for r in query_chunks([5, 6], 3)] == [[5], [6], []]
    assert assign_chunks(10, [5, 6], 3).tolist() == [-1] * 5 + [0, 1] + [-1] * 3
    assert assign_chunks(10, [5, 6], 3, "full-volume").tolist() == [0] * 6 + [1] + [2] * 3


def _store(support_slices: list[int], query_slices: list[int], depth: int = 12) -> MemoryStore:
    """Support 's' and query 'q' (depth x 4 x 4): organ 1 on the given slices; every image slice holds
    its own z (support) or 100 + z (query), so a predictor can tell which slices it was given."""
    images, labels = {}, {}
    for name, zs, offset in (("s", support_slices, 0), ("q", query_slices, 100)):
        label = np.zeros((depth, 4, 4), np.uint8)
        label[zs, 1:3, 1:3] = 1
        labels[name] = label
        images[name] = np.broadcast_to(np.arange(depth, dtype=np.float32)[:, None, None] + offset,
                                       label.shape).copy()
    return MemoryStore(images, labels, {1: "liver"})


class Recorder:
    """A predictor that records (support z's, query z's) per call and predicts the whole slice."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], list[int]]] = []

    def __call__(self, support_images, support_masks, query_images):
        assert support_masks.shape == support_images.shape and support_masks.any(axis=(1, 2)).all()
        self.calls.append(([int(v) for v in support_images[:, 0, 0]], [int(v) - 100 for v in query_images[:, 0, 0]]))
        return np.ones(query_images.shape, bool)


def test_the_protocol_gives_each_chunk_its_k_support_slices():
    store, recorder = _store(ZS, list(range(2, 11)), depth=18), Recorder()
    scores = evaluate_fold(store, Fold(0, ("q",), "s"), recorder, options=InferenceOptions(chunks=3, shots=2))
    assert scores.support_slices == {"liver": [[3, 4], [9, 10], [13, 15]]}
    assert recorder.calls == [([3, 4], [2, 3, 4]), ([9, 10], [5, 6, 7]), ([13, 15], [8, 9, 10])]


def test_a_short_organ_is_segmented_by_the_chunks_that_reach_it():
    store, recorder = _store([4, 5], [6, 7]), Recorder()
    scores = evaluate_fold(store, Fold(0, ("q",), "s"), recorder, options=InferenceOptions(chunks=3, shots=2))
    assert recorder.calls == [([4, 5], [6]), ([4, 5], [7])]  # chunk 2 has no query slice: never called
    # both organ slices scored: 4 true pixels each, 12 false positives each (the whole 4 x 4 slice)
    assert scores.counts["liver"]["q"] == Counts(tp=8, fp=24, fn=0)


def test_a_support_with_too_few_class_slices_is_a_one_line_error():
    store = _store([4, 5], [6, 7])
    with pytest.raises(DataError) as info:
        evaluate_fold(store, Fold(3, ("q",), "s"), Recorder(), options=InferenceOptions(chunks=3, shots=3))
    message = str(info.value)
    assert "\n" not in message
    assert "fold 3" in message and "'s' has 2 slice(s)" in message and "3-shot needs at least 3" in message


def test_the_range_estimate_rounds_halves_up_whatever_their_parity():
    # scale (Zq - 1) / (Zs - 1) = 2 / 4: support slices 1 and 3 map to 0.5 and 1.5, 3 and 5 (of 9) to 1.5, 2.5
    assert estimate_range((1, 3), 5, 3) == (1, 2)
    assert estimate_range((3, 5), 9, 5) == (2, 3), "a support range of 3 slices keeps 2 in the query"
    assert estimate_range((1, 5), 9, 5) == (1, 3)
    assert estimate_range((5, 7), 11, 6) == (3, 4)  # 2.5 -> 3, 3.5 -> 4
    assert estimate_range((1, 2), 7, 4) == (1, 1)  # 0.5 -> 1, 1.0 -> 1
    # halves that floating point would put a hair below or above: 11 * 15 / 22 = 7.5, 7 * 61 / 14 = 30.5
    assert estimate_range((11, 11), 23, 16) == (8, 8) and estimate_range((7, 7), 15, 62) == (31, 31)
    assert estimate_range((10, 20), 41, 21) == (5, 10) and estimate_range((0, 40), 41, 31) == (0, 30)
    assert estimate_range((0, 0), 1, 5) == (0, 0)  # a one-slice support
    assignment, scored = plan_query("estimated-range", 3, [], [1, 3], 5, chunks=2)
    assert assignment.tolist() == [-1, 0, 1] and scored.all()


def test_precision_and_recall_of_empty_masks():
    empty = np.zeros((2, 3, 3), bool)
    some = empty.copy()
    some[0, 1, 1] = True
    both_empty = confusion(empty, empty)
    assert both_empty == Counts() and (both_empty.dice, both_empty.precision, both_empty.recall) == (1.0, 1.0, 1.0)
    missed = confusion(empty, some)  # nothing predicted, one voxel missed
    assert (missed.dice, missed.precision, missed.recall) == (0.0, 0.0, 0.0)
    invented = confusion(some, empty)  # one voxel predicted where there is nothing
    assert (invented.dice, invented.precision, invented.recall) == (0.0, 0.0, 0.0)
    assert Counts().to_json() == {"tp": 0, "fp": 0, "fn": 0, "dice": 100.0, "precision": 100.0, "recall": 100.0}
