"""The evaluation protocol on small in-memory stores with hand-computed answers (no model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from fewshotkit.core.errors import DataError, FewshotkitError
from fewshotkit.evaluation.metrics import Counts, confusion
from fewshotkit.evaluation.options import InferenceOptions
from fewshotkit.evaluation.protocol import (
    ProtocolConfig,
    assign_chunks,
    evaluate_fold,
    query_chunks,
    select_support,
    support_positions,
)


class MemoryStore:
    """The part of the SliceStore API the protocol reads, over numpy arrays."""

    def __init__(self, images: dict[str, np.ndarray], labels: dict[str, np.ndarray], classes: dict[int, str]):
        self.images, self.labels, self.classes = images, labels, classes

    def image(self, volume, z=None):
        return self.images[volume] if z is None else self.images[volume][z]

    def label(self, volume, z=None):
        return self.labels[volume] if z is None else self.labels[volume][z]

    def class_value(self, item):
        if isinstance(item, str):
            for value, name in self.classes.items():
                if name == item:
                    return value
            raise FewshotkitError(f"unknown class {item}")
        return int(item)


@dataclass
class Fold:
    index: int
    queries: tuple[str, ...]
    support: str


def make_store() -> MemoryStore:
    """Support 's' (organ 1 on z 2..11), queries 'a' (z 3..13) and 'b' (z 0..5), 16 x 8 x 8."""
    images, labels = {}, {}
    for name, (lo, hi) in {"s": (2, 11), "a": (3, 13), "b": (0, 5)}.items():
        label = np.zeros((16, 8, 8), np.uint8)
        label[lo : hi + 1, 2:6, 2:6] = 1
        label[lo : hi + 1, 0, 0] = 2  # a second class on the same slices
        images[name] = label.astype(np.float32) + 0.5
        labels[name] = label
    return MemoryStore(images, labels, {1: "liver", 2: "dot"})


def test_support_positions_follow_the_reference_rounding():
    assert support_positions(10, 3) == [1, 5, 8]  # int(10/6)=1, int(30/6)=5, int(50/6)=8
    assert support_positions(6, 3) == [1, 3, 5]
    assert support_positions(1, 3) == [0, 0, 0]
    assert select_support([7, 3, 4, 5, 6, 8, 9, 10, 11, 12], 3, 1) == [[4], [8], [11]]


def test_k_shot_takes_the_nearest_positions():
    zs = list(range(20, 32))  # n = 12 -> centres 2, 6, 10
    assert select_support(zs, 3, 5) == [[20, 21, 22, 23, 24], [24, 25, 26, 27, 28], [27, 28, 29, 30, 31]]
    with pytest.raises(ValueError):
        select_support([1, 2], 3, 5)


def test_query_chunks_are_array_split_of_the_z_range():
    runs = query_chunks([3, 4, 9, 13], 3)  # 3..13 inclusive = 11 slices, gaps included
    assert [r.tolist() for r in runs] == [[3, 4, 5, 6], [7, 8, 9, 10], [11, 12, 13]]
    roy = assign_chunks(16, [3, 13], 3, "roy")
    assert roy.tolist() == [-1] * 3 + [0] * 4 + [1] * 4 + [2] * 3 + [-1] * 2
    full = assign_chunks(16, [3, 13], 3, "full-volume")
    assert full.tolist() == [0] * 7 + [1] * 4 + [2] * 5


def test_metrics_from_counts():
    pred = np.zeros((2, 4, 4), bool)
    truth = np.zeros((2, 4, 4), bool)
    pred[0, :2] = True  # 8 voxels
    truth[0, 1:3] = True  # 8 voxels, overlap 4
    c = confusion(pred, truth)
    assert c == Counts(tp=4, fp=4, fn=4)
    assert c.dice == pytest.approx(0.5) and c.precision == 0.5 and c.recall == 0.5
    assert Counts().dice == 1.0 and Counts(fn=3).dice == 0.0 and Counts(fn=3).precision == 0.0


def test_perfect_predictor_scores_100_and_empty_scores_0():
    store = make_store()
    fold = Fold(0, ("a", "b"), "s")
    truth_of = {}

    def perfect(support_images, support_masks, query_images):
        # the images encode the label (label + 0.5), so thresholding recovers the class mask
        return np.isclose(query_images, truth_of["value"] + 0.5)

    for value in (1, 2):
        truth_of["value"] = value
        scores = evaluate_fold(store, fold, perfect, classes=[value])
        assert scores.mean("dice") == pytest.approx(100.0)
    empty = evaluate_fold(store, fold, lambda s, m, q: np.zeros(q.shape, bool))
    assert empty.per_class("dice") == {"liver": 0.0, "dot": 0.0}
    assert empty.mean("recall") == 0.0


def test_predictor_receives_the_protocol_slices():
    store = make_store()
    calls = []

    def record(support_images, support_masks, query_images):
        calls.append((support_images.shape[0], int(support_masks.sum()), query_images.shape[0]))
        return np.zeros(query_images.shape, bool)

    scores = evaluate_fold(store, Fold(1, ("a",), "s"), record, classes=["liver"])
    # support 's' z 2..11: n=10 -> positions 1, 5, 8 -> z 3, 7, 10; query 'a' z 3..13 -> 4, 4, 3
    assert scores.support_slices == {"liver": [[3], [7], [10]]}
    assert calls == [(1, 16, 4), (1, 16, 4), (1, 16, 3)]
    calls.clear()
    evaluate_fold(store, Fold(1, ("a",), "s"), record, classes=["liver"], protocol="full-volume")
    assert [c[2] for c in calls] == [7, 4, 5]


def test_hand_computed_3d_dice_and_full_volume_false_positives():
    store = make_store()

    def one_slice_too_many(support_images, support_masks, query_images):
        # predicts the organ square on every slice it is given
        out = np.zeros(query_images.shape, bool)
        out[:, 2:6, 2:6] = True
        return out

    fold = Fold(0, ("a",), "s")
    roy = evaluate_fold(store, fold, one_slice_too_many, classes=["liver"])
    assert roy.counts["liver"]["a"] == Counts(tp=11 * 16, fp=0, fn=0)
    assert roy.per_class()["liver"] == pytest.approx(100.0)
    full = evaluate_fold(store, fold, one_slice_too_many, classes=["liver"], protocol="full-volume")
    # 5 slices outside z 3..13 each add 16 false positives: Dice = 2*176 / (2*176 + 80)
    assert full.counts["liver"]["a"] == Counts(tp=176, fp=80, fn=0)
    assert full.per_class()["liver"] == pytest.approx(100 * 352 / 432)


def test_scores_average_over_scans_then_classes():
    store = make_store()

    def liver_perfect_dot_doubled(support_images, support_masks, query_images):
        if support_masks.sum() > 1:  # liver: the 4 x 4 square
            return np.isclose(query_images, 1.5)
        out = np.isclose(query_images, 2.5)  # dot: the true pixel plus one false positive
        out[:, 0, 1] = True
        return out

    scores = evaluate_fold(store, Fold(0, ("a", "b"), "s"), liver_perfect_dot_doubled)
    assert scores.per_class()["liver"] == pytest.approx(100.0)
    assert scores.per_class()["dot"] == pytest.approx(100 * 2 / 3)  # 2TP / (2TP + FP) on each scan
    assert scores.mean() == pytest.approx((100 + 200 / 3) / 2)
    assert scores.mean("precision") == pytest.approx(75.0)
    again = type(scores).from_json(scores.to_json())
    assert again.per_class() == scores.per_class()


def test_five_shot_passes_five_support_slices_per_chunk():
    store = make_store()
    shapes = []

    def record(support_images, support_masks, query_images):
        shapes.append(support_images.shape[0])
        return np.zeros(query_images.shape, bool)

    scores = evaluate_fold(store, Fold(0, ("a",), "s"), record, classes=[1], options=InferenceOptions(shots=5))
    assert shapes == [5, 5, 5]
    assert scores.support_slices["liver"] == [[2, 3, 4, 5, 6], [5, 6, 7, 8, 9], [7, 8, 9, 10, 11]]
    with pytest.raises(DataError, match="11-shot"):
        evaluate_fold(store, Fold(0, ("a",), "s"), record, classes=[1], options=InferenceOptions(shots=11))


def test_support_without_the_class_is_a_data_error():
    store = make_store()
    store.labels["s"] = np.zeros_like(store.labels["s"])
    with pytest.raises(DataError, match="support scan 's'"):
        evaluate_fold(store, Fold(0, ("a",), "s"), lambda s, m, q: np.zeros(q.shape, bool))


def test_query_without_the_class_is_skipped_and_recorded():
    store = make_store()
    store.labels["b"] = np.where(store.labels["b"] == 2, 0, store.labels["b"]).astype(np.uint8)
    scores = evaluate_fold(store, Fold(0, ("a", "b"), "s"), lambda s, m, q: np.zeros(q.shape, bool))
    assert ("b", "dot") in scores.skipped and "b" not in scores.counts["dot"]


def test_sink_receives_full_volumes():
    store = make_store()
    got = {}
    evaluate_fold(store, Fold(0, ("a",), "s"), lambda s, m, q: np.ones(q.shape, bool), classes=[1],
                  sink=lambda scan, name, vol: got.setdefault((scan, name), vol))
    vol = got[("a", "liver")]
    assert vol.shape == (16, 8, 8) and vol.dtype == np.uint8
    assert vol[:3].sum() == 0 and vol[3:14].all()


def test_bad_protocol_options():
    with pytest.raises(FewshotkitError, match="--protocol"):
        ProtocolConfig("everything")
    with pytest.raises(FewshotkitError, match="--shots"):
        ProtocolConfig(shots=0)


def test_estimated_range_segments_the_support_range_and_scores_every_slice():
    store = make_store()
    calls = []

    def organ_square(support_images, support_masks, query_images):
        calls.append(query_images.shape[0])
        out = np.zeros(query_images.shape, bool)
        out[:, 2:6, 2:6] = True
        return out

    # support 's' liver z 2..11 of 16 -> query 'a' (16 deep) z 2..11, split 4, 3, 3; truth z 3..13
    scores = evaluate_fold(store, Fold(0, ("a",), "s"), organ_square, classes=["liver"], protocol="estimated-range")
    assert calls == [4, 3, 3]
    # slice 2 is a false positive, slices 12 and 13 are missed: every slice is scored
    assert scores.counts["liver"]["a"] == Counts(tp=9 * 16, fp=16, fn=2 * 16)


def test_estimated_range_scales_with_the_query_depth_like_segment():
    from fewshotkit.evaluation.query_range import estimated_query_range, plan_query

    store = make_store()
    label = np.zeros((31, 8, 8), np.uint8)
    label[10:20, 2:6, 2:6] = 1
    store.images["deep"], store.labels["deep"] = label.astype(np.float32), label
    seen = []

    def record(support_images, support_masks, query_images):
        seen.append(query_images.shape[0])
        return np.zeros(query_images.shape, bool)

    evaluate_fold(store, Fold(0, ("deep",), "s"), record, classes=["liver"], protocol="estimated-range")
    assert estimated_query_range(range(2, 12), 16, 31) == (4, 22)  # 2 * 30 / 15, 11 * 30 / 15
    assert sum(seen) == 22 - 4 + 1
    assignment, scored = plan_query("estimated-range", 31, range(10, 20), range(2, 12), 16)
    assert np.flatnonzero(assignment >= 0).tolist() == list(range(4, 23)) and scored.all()


def test_protocol_postprocessing_changes_what_is_scored(fresh_host):
    from fewshotkit.evaluation.postprocess import build_postprocess

    store = make_store()

    class Stray:
        """The organ where it is (p 0.9) and a faint voxel (p 0.6) at (7, 7) on every slice without it."""

        def probabilities(self, support_images, support_masks, query_images):
            out = np.where(np.isclose(query_images, 1.5), 0.9, 0.0).astype(np.float32)
            empty = ~out.any(axis=(1, 2))
            out[empty, 7, 7] = 0.6
            return out

        def __call__(self, support_images, support_masks, query_images):
            return self.probabilities(support_images, support_masks, query_images) > 0.5

    fold = Fold(0, ("a",), "s")

    def counts(postprocess=None):
        return evaluate_fold(store, fold, Stray(), classes=["liver"], protocol="full-volume",
                             options=InferenceOptions(postprocess=postprocess)).counts["liver"]["a"]

    # truth z 3..13: the stray voxels form a run on z 0..2 and one on z 14..15
    assert counts() == Counts(tp=176, fp=5, fn=0)
    assert counts(build_postprocess("largest-component")) == Counts(tp=176, fp=0, fn=0)
    assert counts(build_postprocess([{"type": "min-size", "min_size": 3}])) == Counts(tp=176, fp=3, fn=0)
    assert counts(build_postprocess("z-continuity")) == Counts(tp=176, fp=0, fn=0)
    # slice presence: the stray slices' mass (0.6) is below 0.1 x the organ slices' (14.4), not below 0.01 x
    assert counts(build_postprocess([], drop_absent=0.1)) == Counts(tp=176, fp=0, fn=0)
    assert counts(build_postprocess([], drop_absent=0.01)) == Counts(tp=176, fp=5, fn=0)
    with pytest.raises(FewshotkitError, match="probabilities"):
        evaluate_fold(store, fold, lambda s, m, q: np.zeros(q.shape, bool),
                      options=InferenceOptions(postprocess=build_postprocess([], 0.5)))
    # nearest-to-support is given the support scan's mask of the class: the organ's run, not the stray voxels
    assert counts(build_postprocess([{"type": "nearest-to-support", "min_fraction": 0.01}])) == Counts(tp=176, fp=0,
                                                                                                     fn=0)
