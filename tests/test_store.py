"""Slice store: writer/reader round trip, schema checks, check/show/info, folds, filters, samplers."""

from __future__ import annotations

import json
import pickle

import h5py
import numpy as np
import pytest

from fewshotkit.core.errors import DataError, FewshotkitError
from fewshotkit.data.episodes.filters import allowed_slices, resolve_classes
from fewshotkit.data.episodes.folds import get_fold, make_folds, store_folds
from fewshotkit.data.episodes.sampling import AnnotatedSampler, SelfSupervisedSampler
from fewshotkit.data.ingest.synthetic import ingest_synthetic
from fewshotkit.data.store import format as fmt
from fewshotkit.data.store.check import check_store
from fewshotkit.data.store.reader import SliceStore


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "demo.h5"
    ingest_synthetic(path, volumes=6, seed=3, slices=12, size=64, quiet=True)
    return path


def test_reader_api(demo):
    s = SliceStore(demo)
    assert s.volumes == [str(i) for i in range(1, 7)]
    assert s.classes == {1: "liver", 2: "right kidney", 3: "left kidney", 4: "spleen"}
    assert s.modality == "MR" and s.preset == "synthetic"
    assert s.shape("2") == (12, 64, 64)
    img, lab = s.image("2", 5), s.label("2", 5)
    assert img.dtype == np.float32 and img.shape == (64, 64) and lab.dtype == np.uint8
    vol = s.image("2")
    assert abs(vol.mean()) < 1e-3 and abs(vol.std() - 1) < 1e-3  # per-volume z-score
    attrs = s.volume_attrs("2")
    raw = s.pseudolabel_input("2", 5)
    np.testing.assert_allclose(raw, img * attrs["norm_std"] + attrs["norm_mean"], rtol=1e-4, atol=1e-2)
    assert s.class_value("liver") == 1 and s.class_value("4") == 4 and s.class_value(2) == 2
    with pytest.raises(FewshotkitError, match="classes: 1=liver"):
        s.class_value("heart")
    labels = s.label("2")
    for c in s.classes:
        np.testing.assert_array_equal(s.class_pixels(c, "2"), (labels == c).sum(axis=(1, 2)))
        np.testing.assert_array_equal(s.class_slices(c, "2"), np.flatnonzero((labels == c).any(axis=(1, 2))))
    clone = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(clone.label("3", 4), s.label("3", 4))
    s.close()


def test_synthetic_deterministic_and_shaped(tmp_path):
    a, b, c = (tmp_path / f"{n}.h5" for n in "abc")
    ingest_synthetic(a, volumes=2, seed=7, slices=8, size=48, quiet=True)
    ingest_synthetic(b, volumes=2, seed=7, slices=8, size=48, quiet=True)
    ingest_synthetic(c, volumes=2, seed=8, slices=8, size=48, quiet=True)
    sa, sb, sc = SliceStore(a), SliceStore(b), SliceStore(c)
    np.testing.assert_array_equal(sa.pseudolabel_input("1"), sb.pseudolabel_input("1"))
    assert not np.array_equal(sa.pseudolabel_input("1"), sc.pseudolabel_input("1"))
    raw, lab = sa.pseudolabel_input("1"), sa.label("1")
    assert raw[:, 0, 0].max() < 60 and 0 <= raw.min() and raw.max() < 1000  # ~0 background, T2-like scale
    means = [raw[lab == c].mean() for c in (1, 2, 4)]
    assert min(abs(means[0] - means[1]), abs(means[1] - means[2]), abs(means[0] - means[2])) > 60


def test_schema_version_and_not_a_store(demo, tmp_path):
    other = tmp_path / "old.h5"
    other.write_bytes(demo.read_bytes())
    with h5py.File(other, "a") as f:
        f.attrs[fmt.ATTR_SCHEMA] = 99
    with pytest.raises(DataError, match="schema version 99"):
        SliceStore(other)
    with pytest.raises(DataError, match="does not exist"):
        SliceStore(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(DataError, match="junk.h5"):
        SliceStore(junk)


def test_check_detects_bad_index(demo, tmp_path):
    assert check_store(demo) == []
    broken = tmp_path / "broken.h5"
    broken.write_bytes(demo.read_bytes())
    with h5py.File(broken, "a") as f:
        f["volumes/1/label"][3] = 0
    problems = check_store(broken)
    assert any("class-slice index" in p for p in problems)


def test_folds_protocol():
    vols = [str(v) for v in (1, 2, 3, 5, 8, 10, 13, 15, 19, 20, 21, 22, 31, 32, 33, 34, 36, 37, 38, 39)]
    folds = make_folds(vols)
    assert len(folds) == 5
    for k, f in enumerate(folds):
        assert f.queries == tuple(vols[4 * k:4 * k + 4])
        assert f.support == vols[(4 * k + 4) % 20]
        assert len(f.train) == 15 and f.support not in f.train and not set(f.queries) & set(f.train)
    grouped = make_folds([f"p{i // 2}_f{i % 2}" for i in range(20)], 5, [f"p{i // 2}" for i in range(20)])
    for f in grouped:
        train_patients = {v.split("_")[0] for v in f.train}
        assert not train_patients & {v.split("_")[0] for v in (*f.queries, f.support)}


def test_get_fold_out_of_range(demo):
    s = SliceStore(demo)
    assert len(store_folds(s, 3)) == 3
    with pytest.raises(FewshotkitError, match=r"--fold 7 is out of range: the store has 3 folds \(0-2\)"):
        get_fold(s, 7, 3)


def test_setting2_filter_and_annotated_sampler(demo):
    s = SliceStore(demo)
    exclude = resolve_classes(s, "upper")
    assert exclude == [1, 4] and resolve_classes(s, "liver,spleen") == [1, 4] and resolve_classes(s, "1,4") == [1, 4]
    with pytest.raises(FewshotkitError, match="groups: upper"):
        resolve_classes(s, "heart")
    kept = allowed_slices(s, s.volumes, exclude)
    assert kept and all(not np.isin(s.label(v, z), exclude).any() for v, z in kept)
    total = sum(s.shape(v)[0] for v in s.volumes)
    assert len(kept) < total
    sampler = AnnotatedSampler(s, allowed_slices(s, s.volumes), [2, 3])
    rng = np.random.default_rng(0)
    for _ in range(20):
        ep = sampler.sample(rng)
        assert ep.support_volume != ep.query_volume and ep.cls in (2, 3)
        assert ep.support_mask.any() and ep.query_mask.any()
        np.testing.assert_array_equal(ep.query_mask, s.label(ep.query_volume, ep.query_z) == ep.cls)


def _fake_pseudolabels(path, name="grid-size=8"):
    """A set of 8 x 8 px squares (ids 1..K) written directly, for sampler tests."""
    with h5py.File(path, "a") as f:
        g = f[fmt.PSEUDOLABELS].create_group(name)
        g.attrs.update({fmt.SET_COMPONENT: "grid", fmt.SET_PARAMS: json.dumps({"size": 8}), fmt.SET_NDIM: 2,
                        fmt.SET_PLUGIN: "test", fmt.SET_PLUGIN_VERSION: "0"})
        for vol in json.loads(f.attrs[fmt.ATTR_VOLUME_ORDER]):
            z, h, w = f[fmt.VOLUMES][vol][fmt.IMAGE].shape
            yy, xx = np.mgrid[:h, :w]
            ids = (yy // 8) * (w // 8) + xx // 8 + 1
            g.create_dataset(vol, data=np.broadcast_to(ids, (z, h, w)).astype(np.int32), chunks=(1, h, w))


def test_self_supervised_sampler_all_ids_and_streams(demo, tmp_path):
    path = tmp_path / "pl.h5"
    path.write_bytes(demo.read_bytes())
    _fake_pseudolabels(path)
    s = SliceStore(path)
    assert s.resolve_pseudolabel_set(None) == s.resolve_pseudolabel_set("grid") == "grid-size=8"
    fold = get_fold(s, 0, 3)
    sampler = SelfSupervisedSampler(s, "grid", allowed_slices(s, fold.train), min_segment_size=64)
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(600):
        ep = sampler.sample(rng)
        assert ep.volume in fold.train and ep.mask.sum() == 64
        seen.add(ep.segment)
    assert max(seen) == 64 and len(seen) > 55  # the largest id is drawn too
    with pytest.raises(FewshotkitError, match="no slice"):
        SelfSupervisedSampler(s, "grid", allowed_slices(s, fold.train), min_segment_size=65)


def _damaged_copy(demo, tmp_path, change):
    """A copy of ``demo`` with ``change(h5py.File)`` applied."""
    broken = tmp_path / "broken.h5"
    broken.write_bytes(demo.read_bytes())
    with h5py.File(broken, "a") as f:
        change(f)
    return broken


@pytest.mark.parametrize("name, value, message", [
    ("norm_mean", np.nan, "norm_mean is nan, not a finite number"),
    ("norm_std", np.inf, "norm_std is inf, not a positive finite number"),
    ("norm_std", -2.0, "norm_std is -2.0, not a positive finite number"),
    ("voxel_sum", 1.0, "voxel_sum"),
    ("voxel_sumsq", np.nan, "voxel_sumsq"),
    ("voxel_count", 7, "recorded at ingest"),
])
def test_check_compares_the_normalisation_attributes_in_a_store_with_pixel_sha256(demo, tmp_path, name, value,
                                                                                   message):
    from fewshotkit.data.store.check import require_valid_scans

    broken = _damaged_copy(demo, tmp_path, lambda f: f["volumes/2"].attrs.__setitem__(name, value))
    with h5py.File(broken, "r") as f:
        assert "image_sha256" in f["volumes/2"].attrs  # the pixels themselves still match
    problems = check_store(broken)
    assert len(problems) == 1 and problems[0].startswith("volume '2': ") and message in problems[0]
    with SliceStore(broken) as store, pytest.raises(DataError, match="volume '2'"):
        require_valid_scans(store, ["1", "2"])


def test_check_lists_structural_problems_of_a_store_that_opens(demo, tmp_path):
    def change(f):
        f.copy(f["volumes/1"], f["volumes"], name="stray")
        f.attrs[fmt.ATTR_CLASSES] = json.dumps({"1": "liver", "2": "right kidney", "3": "left kidney", "300": "x"})
        del f[fmt.PSEUDOLABELS]

    broken = _damaged_copy(demo, tmp_path, change)
    problems = check_store(broken)  # no KeyError for the missing group
    assert "volume 'stray' is stored but not listed in 'volume_order'" in problems
    assert any(p.startswith("root attribute 'classes' must map values 1..255") for p in problems)
    assert f"group '/{fmt.PSEUDOLABELS}' is missing" in problems


def test_check_skips_the_scan_checks_of_a_volume_whose_record_is_incomplete(demo, tmp_path):
    broken = _damaged_copy(demo, tmp_path, lambda f: f["volumes/3"].__delitem__(fmt.LABEL))
    assert check_store(broken) == ["volume '3': dataset 'label' is missing"]


@pytest.mark.parametrize("patients, n_folds, hint", [
    (2, 2, "use a store with at least 4 patients"),
    (3, 2, "give --n-folds 3, or use a store with at least 4 patients"),
    (4, 5, "give --n-folds 4 or fewer, or use a store with at least 5 patients"),
])
def test_folds_with_an_empty_training_set_are_refused(patients, n_folds, hint):
    with pytest.raises(FewshotkitError, match=rf"--n-folds {n_folds} needs at least \d patients") as error:
        make_folds([f"s{i}" for i in range(patients)], n_folds)
    assert str(error.value).endswith(hint)


def test_every_fold_trains_on_someone_at_the_fewest_patients_and_folds_stay_as_they_were():
    from fewshotkit.data.episodes.folds import fewest_patients

    assert [fewest_patients(n) for n in (2, 3, 5)] == [4, 3, 5]
    for n_folds in (2, 3, 5):
        for patients in range(fewest_patients(n_folds), 12):
            assert all(f.train for f in make_folds([str(i) for i in range(patients)], n_folds))
    folds = make_folds(["a", "b", "c", "d"], 2)
    assert [(f.queries, f.support, f.train) for f in folds] == [(("a", "b"), "c", ("d",)), (("c", "d"), "a", ("b",))]


def test_writer_orders_classes_by_value_whatever_the_type_of_their_keys(tmp_path):
    from fewshotkit.data.store.writer import StoreHeader, StoreWriter, VolumeRecord

    label = np.zeros((2, 8, 8), np.uint8)
    label[0, :2], label[1, :5] = 9, 10
    path = tmp_path / "s.h5"
    header = StoreHeader("test", "MR", {"10": "ten", "9": "nine"})  # type: ignore[dict-item]
    with StoreWriter(path, header) as writer:
        writer.add(VolumeRecord("1", np.ones((2, 8, 8), np.float32), label, "1", "x", "x", (1.0, 1.0, 1.0),
                                (2, 8, 8)))
    with SliceStore(path) as store:
        assert store.class_values == [9, 10]
        np.testing.assert_array_equal(store.class_pixels(9, "1"), [16, 0])
        np.testing.assert_array_equal(store.class_pixels(10, "1"), [0, 40])
    assert check_store(path) == []
