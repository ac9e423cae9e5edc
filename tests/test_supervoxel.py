"""The supervoxel pseudolabeler (3D SLIC with the voxel spacing) and self-supervised episodes from
3D pseudolabel sets: support and query are adjacent slices of one supervoxel. Tiny synthetic data."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.data.ingest.synthetic import ingest_synthetic, phantom
from fewshotkit.data.pseudolabel import run_pseudolabeler
from fewshotkit.data.store.reader import SliceStore

from fewshotkit_supervoxel.body_mask import body_mask_3d
from fewshotkit_supervoxel.labelers import Supervoxels

from conftest import pseudolabelled_store


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    """float32 (16, 64, 64) abdomen-like phantom on a near-zero background."""
    return phantom(0, 0, 16, 64)[0]


@pytest.fixture(scope="module")
def store3d(tmp_path_factory):
    """5 synthetic 64 x 64 volumes of 12 slices (5 x 2.5 x 2.5 mm) with a supervoxel set."""
    path = ingest_synthetic(tmp_path_factory.mktemp("sv") / "syn.h5", volumes=5, seed=1, slices=12, size=64,
                            quiet=True)
    result = run_pseudolabeler(path, "supervoxel", {"size_mm3": 5000}, jobs=1)
    return path, result.set_name


def _slices_per_supervoxel(labels: np.ndarray) -> float:
    """Mean number of slices each supervoxel of ``labels`` (Z, H, W) appears on."""
    present = [np.unique(np.nonzero(labels == k)[0]).size for k in range(1, int(labels.max()) + 1)]
    return float(np.mean(present))


def _z_boundary_fraction(labels: np.ndarray) -> float:
    """Fraction of z-neighbour voxel pairs inside the body that lie in different supervoxels."""
    both = (labels[1:] > 0) & (labels[:-1] > 0)
    return float(((labels[1:] != labels[:-1]) & both).sum() / both.sum())


# -- the pseudolabeler --------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{"n_segments": 30}, {"size_mm3": 2000}])
def test_thick_slices_give_supervoxels_spanning_fewer_slices(volume, options):
    """The same voxels at 5 mm and at 1 mm slices: at 5 mm the slices lie 5x further apart, so a
    compact supervoxel covers fewer of them and more z-neighbour pairs cross a supervoxel boundary."""
    thick = Supervoxels(**options)(volume, (5.0, 1.0, 1.0))
    thin = Supervoxels(**options)(volume, (1.0, 1.0, 1.0))
    assert _slices_per_supervoxel(thick) < 0.6 * _slices_per_supervoxel(thin)
    assert _z_boundary_fraction(thick) > 2 * _z_boundary_fraction(thin)


def test_size_sets_the_number_of_supervoxels_from_the_physical_body_volume(volume):
    spacing = (5.0, 2.5, 2.5)
    body_mm3 = body_mask_3d(volume).sum() * math.prod(spacing)
    for size in (4000.0, 16000.0):
        k = int(Supervoxels(size_mm3=size)(volume, spacing).max())
        assert 0.6 * body_mm3 / size <= k <= 1.4 * body_mm3 / size, (k, body_mm3 / size)


@pytest.mark.parametrize("use_body_mask", [True, False])
def test_ids_are_contiguous_and_the_body_mask_is_honoured(volume, use_body_mask):
    labels = Supervoxels(n_segments=40, use_body_mask=use_body_mask)(volume, (5.0, 2.5, 2.5))
    assert labels.dtype == np.int32 and labels.shape == volume.shape
    k = int(labels.max())
    assert k >= 20
    body = body_mask_3d(volume) if use_body_mask else np.ones(volume.shape, dtype=bool)
    np.testing.assert_array_equal(labels > 0, body)  # 0 exactly outside the body, nowhere inside
    assert np.array_equal(np.unique(labels[body]), np.arange(1, k + 1))  # 1..K without gaps
    if use_body_mask:
        assert labels[:, 0, 0].max() == 0 and 0.2 < body.mean() < 0.9


def test_body_mask_fills_holes_per_slice():
    volume = np.zeros((6, 40, 40), dtype=np.float32)
    volume[:, 5:35, 5:35] = 100.0
    volume[:, 15:25, 15:25] = 0.0  # a dark tube through every slice: open at the top and bottom in 3D
    volume[2, 0, 0] = 100.0  # a speck outside the body
    mask = body_mask_3d(volume)
    assert mask[:, 15:25, 15:25].all() and not mask[2, 0, 0] and mask.sum() == 6 * 30 * 30


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"size_mm3": 0}, "'size_mm3' must be a number > 0"),
        ({"size_mm3": "large"}, "'size_mm3' must be a number > 0"),
        ({"n_segments": 0}, "'n_segments' must be an integer >= 1"),
        ({"n_segments": 2.5}, "'n_segments' must be an integer >= 1"),
        ({"n_segments": True}, "'n_segments' must be an integer >= 1"),
        ({"size_mm3": 1000, "n_segments": 10}, "either size_mm3 or n_segments, not both"),
        ({"compactness": 0}, "'compactness' must be a number > 0"),
        ({"sigma_mm": -1}, "'sigma_mm' must be a number >= 0"),
        ({"max_num_iter": 0}, "'max_num_iter' must be an integer >= 1"),
        ({"use_body_mask": "yes"}, "'use_body_mask' must be true or false"),
        ({"body_threshold": float("nan")}, "'body_threshold' must be a finite number"),
    ],
)
def test_bad_options_are_one_line_errors(options, needle):
    from fewshotkit.host.plugin_host import PluginHost

    with pytest.raises(FewshotkitError, match=needle) as info:
        PluginHost().registry.create("pseudolabeler", "supervoxel", **options)
    assert "\n" not in str(info.value)


def test_params_name_the_set_without_unset_options():
    assert Supervoxels().params() == {"size_mm3": 60000.0, "compactness": 0.1, "sigma_mm": 1.0,
                                      "max_num_iter": 5, "use_body_mask": True}
    assert "size_mm3" not in Supervoxels(n_segments=50).params()


@pytest.mark.parametrize(
    "image, spacing, needle",
    [
        (np.ones((8, 8)), (1.0, 1.0, 1.0), "takes a volume"),
        (np.ones((4, 8, 8)), None, "needs the voxel spacing"),
        (np.ones((4, 8, 8)), (0.0, 1.0, 1.0), "needs the voxel spacing"),
        (np.ones((4, 8, 8)), (1.0, float("nan"), 1.0), "needs the voxel spacing"),
        (np.ones((4, 8, 8)), (1.0, 1.0), "needs the voxel spacing"),
        (np.zeros((4, 8, 8)), (1.0, 1.0, 1.0), "body mask is empty"),
        (np.full((4, 8, 8), np.nan), (1.0, 1.0, 1.0), "NaN"),
    ],
)
def test_bad_volumes_are_one_line_errors(image, spacing, needle):
    with pytest.raises(FewshotkitError, match=needle) as info:
        Supervoxels()(image, spacing)
    assert "\n" not in str(info.value)


# -- over a store -------------------------------------------------------------------------------
def _break_store(path, vol: str, how: str) -> None:
    with h5py.File(path, "a") as f:
        group = f["volumes"][vol]
        if how == "no spacing":
            del group.attrs["spacing"]
        elif how == "zero spacing":
            group.attrs["spacing"] = np.array([0.0, 2.5, 2.5])
        else:  # empty body: nothing above the background
            group["image"][...] = 0.0


@pytest.mark.parametrize(
    "how, needles",
    [
        ("no spacing", ("volume '3'", "no valid voxel spacing", "re-ingest")),
        ("zero spacing", ("volume '3'", "no valid voxel spacing")),
        ("empty body", ("volume '3'", "body mask is empty", "body_threshold")),
    ],
)
def test_bad_stores_give_one_line_errors_and_stay_unchanged(tmp_path, run_cli, how, needles, digest):
    path = ingest_synthetic(tmp_path / "bad.h5", volumes=4, seed=2, slices=6, size=32, quiet=True)
    _break_store(path, "3", how)
    before = digest(path)
    result = run_cli("pseudolabel", str(path), "--with", "supervoxel", "-j", "1")
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert all(n in lines[0] for n in needles), lines[0]
    assert digest(path) == before and not list(tmp_path.glob(".*.tmp"))


def test_store_set_is_3d_with_contiguous_ids_per_volume(store3d):
    path, name = store3d
    s = SliceStore(path)
    attrs = s.pseudolabel_set_attrs(name)
    assert attrs["ndim"] == 3 and attrs["plugin"] == "supervoxel" and attrs["params"]["size_mm3"] == 5000
    for vol in s.volumes:
        labels = s.pseudolabel(name, vol)
        assert np.array_equal(np.unique(labels), np.arange(int(labels.max()) + 1)) and labels.max() >= 10


# -- episodes -----------------------------------------------------------------------------------
def test_sampler_draws_adjacent_slices_of_one_supervoxel(store3d):
    from fewshotkit.data.episodes.sampling import SelfSupervisedSampler

    path, name = store3d
    s = SliceStore(path)
    allowed = [(v, z) for v in ("1", "2", "3") for z in range(12) if z != 5]  # a hole at z = 5
    sampler = SelfSupervisedSampler(s, name, allowed, min_segment_size=20)
    assert sampler.ndim == 3
    rng = np.random.default_rng(0)
    seen_orders = set()
    for _ in range(40):
        x = sampler.sample(rng)
        assert x.volume in ("1", "2", "3") and abs(x.z - x.query_z) == 1 and 5 not in (x.z, x.query_z)
        seen_orders.add(x.z < x.query_z)
        for z, image, mask in ((x.z, x.image, x.mask), (x.query_z, x.query_image, x.query_mask)):
            np.testing.assert_array_equal(mask, s.pseudolabel(name, x.volume, z) == x.segment)
            np.testing.assert_array_equal(image, s.image(x.volume, z))
            assert mask.sum() >= 20
    assert seen_orders == {True, False}  # either slice may be the support

    with pytest.raises(FewshotkitError, match="no supervoxel with >= 100000 pixels on each of two adjacent"):
        SelfSupervisedSampler(s, name, allowed, min_segment_size=100_000)


def test_2d_sets_sample_as_before(tmp_path):
    """A 2D set: no query fields, and the draws are the slice-then-segment scheme."""
    from fewshotkit.data.episodes.sampling import SelfSupervisedSampler
    from fewshotkit.training.batches import sample_record

    path = pseudolabelled_store(tmp_path / "s2d.h5", min_size=100, volumes=2, seed=0, slices=6, size=64)
    s = SliceStore(path)
    slices = [(v, z) for v in s.volumes for z in range(6)]
    sampler = SelfSupervisedSampler(s, "felzenszwalb", slices)
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(5):
        x = sampler.sample(a)
        vol, z, ids = sampler.entries[int(b.integers(len(sampler.entries)))]
        assert (x.volume, x.z, x.segment) == (vol, z, int(ids[int(b.integers(len(ids)))]))
        assert x.query_image is None and x.query_mask is None
        assert set(sample_record(x)) == {"volume", "z", "segment"}


def test_a_supervoxel_set_trains_through_train(store3d, tmp_path, fresh_host):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training import train

    path, name = store3d
    spec = apply_overrides(preset_spec("ssl-alpnet-cpu"), [
        "image_size=64", "backbone.width=8", "backbone.out_channels=32", "backbone.output_stride=8",
        "training.log_every=2", "training.checkpoint_every=4", "training.batch_size=2",
        "training.min_segment_size=20",
    ])
    out = tmp_path / "run"
    last = train(spec, path, out, steps=4, device="cpu", seed=0, pseudolabels="supervoxel", log_episodes=True)
    assert last.is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["pseudolabel_set"] == name
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 8
    assert all(abs(e["z"] - e["query_z"]) == 1 and e["volume"] in run["fold_train"] for e in episodes)
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert losses and all(math.isfinite(v) for v in losses)
