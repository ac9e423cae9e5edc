"""How a query's range is cut into chunks: fewshotkit's even split, SSL-ALPNet's and Q-Net's cuts,
with hand-computed answers, through the protocol, the options, the command line and bench's keys."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.options import InferenceOptions
from fewshotkit.evaluation.protocol import ProtocolConfig, evaluate_fold
from fewshotkit.evaluation.query_range import CHUNK_RULES, assign_chunks, plan_query, query_chunks
from test_protocol import Fold, MemoryStore


def lengths(class_slices: list[int], rule: str, chunks: int = 3) -> list[int]:
    return [run.size for run in query_chunks(class_slices, chunks, rule)]


@pytest.mark.parametrize("rule, expected", [("even", [4, 4, 3]), ("ssl-alpnet", [4, 3, 4]), ("qnet", [3, 4, 4])])
def test_eleven_slices_cut_as_each_code_cuts_them(rule, expected):
    assert lengths(list(range(20, 31)), rule) == expected


def test_ssl_alpnets_cut_is_the_floor_of_the_relative_position():
    # z0 = 0, z1 = 9: width 3, so z 0-2 -> 0, 3-5 -> 1, 6-8 -> 2 and z1 = 9 -> min(3, 2) = 2
    runs = query_chunks(list(range(10)), 3, "ssl-alpnet")
    assert [r.tolist() for r in runs] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    # two slices, three chunks: the first slice in chunk 0, the last in chunk 2, none in chunk 1
    assert [r.tolist() for r in query_chunks([5, 6], 3, "ssl-alpnet")] == [[5], [], [6]]
    assert [r.tolist() for r in query_chunks([7], 3, "ssl-alpnet")] == [[7], [], []]


def test_ssl_alpnets_cut_matches_its_python_floor_division_for_any_chunk_count():
    for n in range(1, 80):
        zs = list(range(7, 7 + n))
        for chunks in range(1, 13):
            width = (zs[-1] - zs[0]) / chunks
            expected = [0 if width == 0 else min(int((z - zs[0]) // width), chunks - 1) for z in zs]
            got = assign_chunks(100, zs, chunks, "roy", "ssl-alpnet")[zs]
            assert got.tolist() == expected, (n, chunks)
    # 11 slices in 6 chunks: 5 / (10 / 6) is 3.0 as Python divides, 2.9999... as a product
    assert lengths(list(range(11)), "ssl-alpnet", 6) == [2, 2, 2, 1, 2, 2]


def test_qnets_cut_keeps_only_the_class_slices():
    class_slices = [2, 3, 4, 6, 7, 8]  # slice 5 shows no class; linspace(0, 6, 4) -> 0, 2, 4, 6
    assert [r.tolist() for r in query_chunks(class_slices, 3, "qnet")] == [[2, 3], [4, 6], [7, 8]]
    roy, scored = plan_query("roy", 10, class_slices, [0, 1], 10, 3, "qnet")
    assert roy.tolist() == [-1, -1, 0, 0, 1, -1, 1, 2, 2, -1]
    assert scored.tolist() == [False, False, True, True, True, False, True, True, True, False]
    full = assign_chunks(10, class_slices, 3, "full-volume", "qnet")
    assert full.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2], "the left-out slice takes the chunk before it"


@pytest.mark.parametrize("rule", CHUNK_RULES)
def test_every_rule_cuts_the_range_into_contiguous_chunks_in_order(rule):
    rng = np.random.default_rng(0)
    for _ in range(50):
        lo = int(rng.integers(0, 10))
        zs = list(range(lo, lo + int(rng.integers(1, 40))))
        chunks = int(rng.integers(1, 6))
        runs = query_chunks(zs, chunks, rule)
        assert len(runs) == chunks
        assert np.concatenate(runs).tolist() == zs
        assert all(np.all(np.diff(r) == 1) for r in runs if r.size)


def slice_numbered(label: np.ndarray) -> np.ndarray:
    """An image whose every voxel holds its slice's z (Z, H, W), so a predictor can tell slices apart."""
    return np.broadcast_to(np.arange(label.shape[0], dtype=np.float32)[:, None, None], label.shape).copy()


def test_the_protocol_serves_each_chunk_with_its_support_slice_under_every_rule():
    label = np.zeros((16, 8, 8), np.uint8)
    support = label.copy()
    support[2:12, 2:6, 2:6] = 1  # n = 10: support slices z 3, 7, 10
    query = label.copy()
    query[3:14, 2:6, 2:6] = 1  # z 3..13, 11 slices
    store = MemoryStore({"s": slice_numbered(support), "a": slice_numbered(query)},
                        {"s": support, "a": query}, {1: "liver"})
    cuts = {"even": [[3, 4, 5, 6], [7, 8, 9, 10], [11, 12, 13]],
            "ssl-alpnet": [[3, 4, 5, 6], [7, 8, 9], [10, 11, 12, 13]],
            "qnet": [[3, 4, 5], [6, 7, 8, 9], [10, 11, 12, 13]]}
    for rule, expected in cuts.items():
        calls: list[tuple[int, list[int]]] = []

        def record(support_images, support_masks, query_images, calls=calls):
            calls.append((int(support_images[0, 0, 0]), query_images[:, 0, 0].astype(int).tolist()))
            return np.zeros(query_images.shape, bool)

        evaluate_fold(store, Fold(0, ("a",), "s"), record, options=InferenceOptions(chunk_rule=rule))
        assert calls == list(zip([3, 7, 10], expected)), rule


def test_the_orientation_search_cuts_the_query_by_the_rule():
    label = np.zeros((16, 8, 8), np.uint8)
    label[3:14, 2:6, 2:6] = 1
    store = MemoryStore({"s": slice_numbered(label), "a": slice_numbered(label)}, {"s": label, "a": label}, {1: "x"})

    class Soft:
        def __init__(self):
            self.sizes: list[int] = []

        def __call__(self, support_images, support_masks, query_images):
            return self.probabilities(support_images, support_masks, query_images) > 0.5

        def probabilities(self, support_images, support_masks, query_images):
            self.sizes.append(query_images.shape[0])
            return np.zeros(query_images.shape, np.float32)

    predictor = Soft()
    evaluate_fold(store, Fold(0, ("a",), "s"), predictor,
                  options=InferenceOptions(chunk_rule="ssl-alpnet", support_orientation="search"))
    assert predictor.sizes and set(predictor.sizes) == {4, 3}, "every pass of the search is one of the rule's chunks"
    assert predictor.sizes[:3] == [4, 3, 4]


def test_estimated_range_without_a_label_cuts_every_slice_of_the_range():
    # support z 2..11 of 16 -> the query's range 2..11 (10 slices): linspace(0, 10, 4) -> 3, 3, 4
    assignment, scored = plan_query("estimated-range", 16, [], list(range(2, 12)), 16, 3, "qnet")
    assert [int((assignment == i).sum()) for i in range(3)] == [3, 3, 4] and scored.all()
    assert np.flatnonzero(assignment >= 0).tolist() == list(range(2, 12))


def test_segments_joint_pass_cuts_the_union_of_the_ranges_by_the_rule():
    from fewshotkit.evaluation.scan import segment_volume

    class TwoWay:
        multiway = True

        def __init__(self):
            self.sizes: list[int] = []

        def class_probabilities(self, support_images, support_masks, query_images):  # masks (S, N, H, W)
            self.sizes.append(query_images.shape[0])
            out = np.zeros((query_images.shape[0], support_masks.shape[1] + 1, *query_images.shape[1:]), np.float32)
            out[:, 0] = 1.0
            return out

    label = np.zeros((16, 6, 6), np.uint8)
    label[3:9, 1:3, 1:3] = 1
    label[6:14, 3:5, 3:5] = 2  # the union of the two ranges: z 3..13, 11 slices
    predictor = TwoWay()
    options = InferenceOptions(query_range=(3, 13), chunk_rule="ssl-alpnet")
    segment_volume(predictor, label.astype(np.float32), label, label.astype(np.float32), [1, 2], options=options)
    assert predictor.sizes == [4, 3, 4]


def test_an_unknown_rule_is_one_line_naming_the_option():
    with pytest.raises(FewshotkitError, match=r"chunk_rule \(--chunk-rule\) must be one of even, ssl-alpnet, qnet"):
        InferenceOptions(chunk_rule="thirds")
    with pytest.raises(FewshotkitError, match="--chunk-rule"):
        ProtocolConfig(chunk_rule="thirds")
    assert ProtocolConfig(chunk_rule="qnet").to_json()["chunk_rule"] == "qnet"


def test_eval_takes_the_rule_and_records_it(run_cli, trained_run, synthetic_store, tmp_path):
    out = tmp_path / "results.json"
    done = run_cli("eval", str(trained_run), "--store", str(synthetic_store), "--chunk-rule", "ssl-alpnet",
                   "-o", str(out))
    assert done.exit_code == 0, done.output
    assert "roy (chunks cut as ssl-alpnet)" in " ".join(done.output.split()), "the printed table names the rule"
    protocol = json.loads(out.read_text())["protocol"]
    assert protocol["chunk_rule"] == "ssl-alpnet" and "(z - z0) // ((z1 - z0) / C)" in protocol["query_chunks"]
    failed = run_cli("eval", str(trained_run), "--store", str(synthetic_store), "--chunk-rule", "thirds")
    assert failed.exit_code != 0 and "--chunk-rule" in failed.output


def test_bench_keys_a_cell_by_its_rule_only_when_it_is_not_the_default(synthetic_store, tmp_path):
    from fewshotkit.apps.bench.cache import evaluation_key
    from fewshotkit.apps.bench.config import BenchConfig
    from fewshotkit.apps.bench.methods import method_spec
    from fewshotkit.apps.bench.tables import table_title

    spec = method_spec("alpnet-init")
    default = BenchConfig(stores=[str(synthetic_store)], methods=["alpnet-init"], out=str(tmp_path))
    assert evaluation_key(default, spec)[1] == {"shots": 1, "chunks": 3}, "keys of cells scored before are unchanged"
    assert "chunks cut" not in table_title(default, str(synthetic_store), 1)
    cut = BenchConfig(stores=[str(synthetic_store)], methods=["alpnet-init"], out=str(tmp_path), chunk_rule="qnet")
    options, key = evaluation_key(cut, spec)
    assert options.chunk_rule == "qnet" and key["chunk_rule"] == "qnet"
    assert "roy protocol (chunks cut as qnet)" in table_title(cut, str(synthetic_store), 1)
    with pytest.raises(FewshotkitError, match="--chunk-rule"):
        BenchConfig(stores=[str(synthetic_store)], methods=["alpnet-init"], out=str(tmp_path), chunk_rule="thirds")


@pytest.mark.parametrize("rule, expected", [("even", [4, 4, 3]), ("ssl-alpnet", [4, 3, 4]), ("qnet", [3, 4, 4])])
def test_segment_cuts_its_query_range_by_the_rule(rule, expected):
    from fewshotkit.evaluation.scan import _plan

    support = np.zeros((16, 8, 8), np.uint8)
    support[2:12, 2:6, 2:6] = 1
    options = InferenceOptions(query_range=(3, 13), chunk_rule=rule)
    _, assignment = _plan(1, "liver", support, 16, options, "support")
    assert [int((assignment == i).sum()) for i in range(3)] == expected
    assert np.flatnonzero(assignment >= 0).tolist() == list(range(3, 14))


def test_the_set_alias_and_the_option_name_one_rule_and_share_bench_cells(synthetic_store, tmp_path):
    from fewshotkit.apps.bench.cache import evaluation_key, variant_suffix
    from fewshotkit.apps.bench.config import BenchConfig
    from fewshotkit.apps.bench.methods import method_spec
    from fewshotkit.cli.options import CHUNK_RULE_CHOICES

    assert CHUNK_RULE_CHOICES == CHUNK_RULES
    assert InferenceOptions.from_values(overrides=["chunk_rule=qnet"]).chunk_rule == "qnet"
    assert InferenceOptions.from_values(chunk_rule="even", overrides=["chunk_rule=qnet"]).chunk_rule == "even"
    assert InferenceOptions.from_values(chunk_rule=None).chunk_rule == "even"
    spec = method_spec("alpnet-init")
    common = {"stores": [str(synthetic_store)], "methods": ["alpnet-init"], "out": str(tmp_path)}
    flag = evaluation_key(BenchConfig(**common, chunk_rule="qnet"), spec)[1]
    alias = evaluation_key(BenchConfig(**common, eval_overrides=["chunk_rule=qnet"]), spec)[1]
    assert flag == alias == {"shots": 1, "chunks": 3, "chunk_rule": "qnet"}
    assert variant_suffix(flag) == "_chunks-qnet"
    with pytest.raises(FewshotkitError, match="--eval-set"):
        BenchConfig(**common, overrides=["chunk_rule=qnet"])
    with pytest.raises(FewshotkitError, match="overridden by the study's own --chunk-rule"):
        BenchConfig(**common, chunk_rule="qnet", readings={"even cut": ["chunk_rule=even"]})
