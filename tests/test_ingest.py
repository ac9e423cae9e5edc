"""Ingestion presets: real-data acceptance, geometry round trip, bad input, interrupted runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest

from fewshotkit.core.errors import DataError
from fewshotkit.data.episodes.filters import allowed_slices, resolve_classes
from fewshotkit.data.ingest.nifti import ingest_nifti
from fewshotkit.data.ingest.volume import load_volume
from fewshotkit.data.store.reader import SliceStore

CHAOS_PIDS = [1, 2, 3, 5, 8, 10, 13, 15, 19, 20, 21, 22, 31, 32, 33, 34, 36, 37, 38, 39]


def _pair(folder, key, shape=(40, 30, 5), labels=(0, 1, 2), nan=False, affine=None):
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 500, shape)
    if nan:
        img[0, 0, 0] = np.nan
    lab = rng.choice(labels, size=shape).astype(np.float64)
    aff = affine if affine is not None else np.diag([1.5, 1.5, 6.0, 1.0])
    nib.save(nib.Nifti1Image(img, aff), folder / f"image_{key}.nii.gz")
    nib.save(nib.Nifti1Image(lab, aff), folder / f"label_{key}.nii.gz")


@pytest.mark.data
def test_chaos_t2_acceptance(chaos_dir, tmp_path, run_cli):
    out = tmp_path / "chaos.h5"
    result = run_cli("ingest", "chaos-t2", str(chaos_dir), "-o", str(out))
    assert result.exit_code == 0, result.output
    s = SliceStore(out)
    assert s.volumes == [str(p) for p in CHAOS_PIDS] and s.n_slices == 718 and len(s.classes) == 4
    for pid in CHAOS_PIDS:
        lab = np.asarray(nib.load(chaos_dir / f"label_{pid}.nii.gz").dataobj)  # (x, y, z)
        for c in range(1, 5):
            expected = np.flatnonzero((lab == c).any(axis=(0, 1)))
            np.testing.assert_array_equal(s.class_slices(c, str(pid)), expected)
            np.testing.assert_array_equal(s.class_pixels(c, str(pid)), (lab == c).sum(axis=(0, 1)))
    # geometry round trip: stored affine = source affine; to_nifti overlays the source label
    src = nib.load(chaos_dir / "label_5.nii.gz")
    np.testing.assert_allclose(np.asarray(s.volume_attrs("5")["affine"]), src.affine)
    back = s.to_nifti("5", s.label("5"))
    np.testing.assert_allclose(back.affine, src.affine)
    np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(src.dataobj).astype(np.uint8))
    # setting 2 for {liver, spleen}: no kept slice contains either
    kept = allowed_slices(s, s.volumes, resolve_classes(s, "liver,spleen"))
    assert kept
    for vol, z in kept:
        assert not np.isin(s.label(vol, z), (1, 4)).any()


@pytest.mark.data
def test_acdc_acceptance(acdc_dir, tmp_path, run_cli):
    out = tmp_path / "acdc.h5"
    result = run_cli("ingest", "acdc", str(acdc_dir), "-o", str(out))
    assert result.exit_code == 0, result.output
    s = SliceStore(out)
    assert len(s.volumes) == 60 and s.classes == {1: "RV", 2: "LV-MYO", 3: "LV-BP"}
    assert all(s.shape(v)[1:] == (256, 256) for v in s.volumes)
    assert s.volume_attrs("patient001_frame02")["patient"] == "patient001"
    back = s.to_nifti("patient001_frame01", s.label("patient001_frame01"))
    assert back.shape == (216, 256, 10) and np.allclose(back.affine, np.eye(4))


def test_nifti_geometry_round_trip_and_crop(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    affine = np.array([[-1.2, 0, 0, 90.0], [0, 1.3, 0, -40.0], [0, 0, 5.0, 12.0], [0, 0, 0, 1]])
    _pair(src, "7", shape=(40, 30, 5), affine=affine)
    out = tmp_path / "s.h5"
    ingest_nifti(src, out, labels={1: "a", 2: "b"}, target_size=32, quiet=True)
    s = SliceStore(out)
    assert s.shape("7") == (5, 32, 32)
    np.testing.assert_allclose(np.asarray(s.volume_attrs("7")["affine"]), affine)
    assert s.volume_attrs("7")["spacing"] == pytest.approx([5.0, 1.3, 1.2])
    back = s.to_nifti("7", s.label("7"))
    source = np.asarray(nib.load(src / "label_7.nii.gz").dataobj).astype(np.uint8)
    np.testing.assert_allclose(back.affine, affine)
    assert back.shape == source.shape
    np.testing.assert_array_equal(np.asarray(back.dataobj)[4:36], source[4:36])  # cropped rows come back as 0
    vol = load_volume(src / "image_7.nii.gz", src / "label_7.nii.gz")  # a scan to segment: its own grid
    assert vol.image.shape == source.shape[::-1] and abs(float(vol.image.mean())) < 1e-4
    np.testing.assert_array_equal(vol.label, source.transpose(2, 1, 0))
    written = nib.load(vol.write_labels(tmp_path / "back.nii.gz", vol.label))
    np.testing.assert_array_equal(np.asarray(written.dataobj), source)


def test_scans_in_several_orientations_are_named_at_ingest_and_by_store_info(tmp_path, run_cli):
    import warnings

    src = tmp_path / "src"
    src.mkdir()
    for key in ("1", "2", "3"):
        _pair(src, key)  # RAS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one orientation: nothing to say
        ingest_nifti(src, tmp_path / "one.h5", labels={1: "a", 2: "b"}, target_size=32, quiet=True)
    _pair(src, "4", affine=np.diag([-1.5, -1.5, 6.0, 1.0]))  # LPS
    out = tmp_path / "s.h5"
    with pytest.warns(UserWarning, match=r"scans in 2 orientations \(RAS: 3, LPS: 1; not RAS: '4' \(LPS\)\).*--orientation RAS"):
        ingest_nifti(src, out, labels={1: "a", 2: "b"}, target_size=32, quiet=True)
    info = run_cli("store", "info", str(out))
    assert info.exit_code == 0 and "LPS" in info.output
    assert "scans in 2 orientations" in " ".join(info.output.split())


def test_ingest_can_store_every_scan_in_one_orientation_and_map_back_to_each_file(tmp_path, run_cli):
    import warnings

    src = tmp_path / "src"
    src.mkdir()
    for key in ("1", "2"):
        _pair(src, key)  # RAS; every _pair call draws the same arrays
    _pair(src, "3", affine=np.diag([-1.5, -1.5, 6.0, 1.0]))  # the same voxels read as LPS: x and y mirrored
    out = tmp_path / "s.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one orientation in the store: no warning
        ingest_nifti(src, out, labels={1: "a", 2: "b"}, orientation="ras", quiet=True)
    with SliceStore(out) as store:
        np.testing.assert_array_equal(store.label("3"), store.label("1")[:, ::-1, ::-1])
        assert store.volume_attrs("3")["inplane"] == [{"op": "reorient", "from": "LPS", "to": "RAS"}]
        back = store.to_nifti("3", store.label("3"))  # on file 3's own grid, with its affine
        source = nib.load(src / "label_3.nii.gz")
        np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(source.dataobj).astype(np.uint8))
        np.testing.assert_allclose(back.affine, source.affine)
    info = run_cli("store", "info", str(out))
    assert info.exit_code == 0 and "LPS" not in info.output and "orientations" not in info.output
    bad = run_cli("ingest", "nifti", str(src), "-o", str(tmp_path / "x.h5"), "--labels", "1=a,2=b",
                  "--orientation", "RRS")
    assert bad.exit_code == 1 and "--orientation 'RRS'" in bad.output and len(bad.output.strip().splitlines()) == 1


@pytest.mark.parametrize("inplane", ["crop_pad", "resize"])
def test_a_reorientation_that_swaps_axes_keeps_spacing_geometry_and_the_way_back(tmp_path, inplane):
    from fewshotkit.data.ingest.common import ScanPrep
    from fewshotkit.data.ingest.nifti import ingest_nifti_pairs
    from fewshotkit.data.store.fingerprint import store_fingerprint

    src = tmp_path / "src"
    src.mkdir()
    _pair(src, "1", shape=(40, 30, 6), affine=np.diag([1.2, 1.5, 5.0, 1.0]))  # RAS, x/y/z all different
    stores = {}
    for codes in (None, "ASL"):  # ASL: voxel x runs along A (source y), y along S (source z), z along L (source x)
        stores[codes] = ingest_nifti_pairs(src, tmp_path / f"{codes}.h5", preset="nifti", image_glob="image_*.nii.gz",
                                           label_glob="label_*.nii.gz", classes={1: "a", 2: "b"},
                                           codes={1.0: 1, 2.0: 2}, quiet=True,
                                           prep=ScanPrep(target_size=32, inplane_mode=inplane, orientation=codes))
    with SliceStore(stores["ASL"]) as store, SliceStore(stores[None]) as plain:
        assert store.shape("1") == (40, 32, 32)  # 40 slices along L; (S 6, A 30) cropped/padded or resized to 32
        expected = [1.2, 5.0, 1.5] if inplane == "crop_pad" else [1.2, 5.0 * 6 / 32, 1.5 * 30 / 32]
        assert store.volume_attrs("1")["spacing"] == pytest.approx(expected)
        assert store_fingerprint(store) != store_fingerprint(plain)
        back = store.to_nifti("1", store.label("1"))
        source = nib.load(src / "label_1.nii.gz")
        assert back.shape == source.shape and np.allclose(back.affine, source.affine)
        if inplane == "crop_pad":  # padding only: every source voxel is kept, so the way back is exact
            np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(source.dataobj).astype(np.uint8))


@pytest.mark.parametrize("problem, match", [
    ("missing", "does not exist"),
    ("empty", "has no files matching"),
    ("unpaired", "has no partner"),
    ("gzip", "cannot be read as NIfTI"),
    ("nan", "NaN"),
    ("shape", "must match"),
    ("codes", "unknown label values 7"),
])
def test_bad_input_one_line_error(tmp_path, run_cli, problem, match):
    src = tmp_path / "src"
    if problem != "missing":
        src.mkdir()
    if problem in ("unpaired", "gzip", "nan", "shape", "codes"):
        _pair(src, "1", nan=problem == "nan", labels=(0, 1, 7) if problem == "codes" else (0, 1))
    if problem == "unpaired":
        (src / "label_1.nii.gz").rename(src / "label_2.nii.gz")
    if problem == "gzip":
        data = (src / "image_1.nii.gz").read_bytes()
        (src / "image_1.nii.gz").write_bytes(data[: len(data) // 2])
    if problem == "shape":
        nib.save(nib.Nifti1Image(np.zeros((40, 30, 4)), np.eye(4)), src / "label_1.nii.gz")
    out = tmp_path / "out.h5"
    result = run_cli("ingest", "nifti", str(src), "-o", str(out), "--labels", "1=liver")
    assert result.exit_code == 1
    message = result.output.strip()
    assert "\n" not in message and match in message and "Traceback" not in message
    assert not out.exists() and not list(tmp_path.glob(".out.h5*"))


def _kill_midway(cmd: list[str], out, tmp_path, sig=signal.SIGTERM, delay=1.5):
    """Start ``fewshotkit cmd``, wait until its temporary copy of ``out`` exists, then ``delay`` s later
    send ``sig``: the command must still be running and still writing (the temporary not yet renamed).
    Returns the finished process; a SIGKILL leaves the temporary behind, which proves it landed mid-write."""
    proc = subprocess.Popen([sys.executable, "-m", "fewshotkit", *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.time() + 60
    temporaries: list = []
    while time.time() < deadline and not temporaries and proc.poll() is None:
        temporaries = list(tmp_path.glob(f".{out.name}.*.tmp"))
        time.sleep(0.05)
    assert temporaries, "the command never wrote a temporary file, so nothing was interrupted mid-write"
    time.sleep(delay)
    assert proc.poll() is None, "the command finished before it could be interrupted"
    assert all(t.exists() for t in temporaries), "the temporary was renamed: the kill would land after the write"
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode != 0, "the command finished normally instead of being interrupted"
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL and all(t.exists() for t in temporaries), "killed mid-write"
    return proc


def test_a_stop_request_whose_interrupt_was_dropped_still_stops_the_writer(tmp_path, monkeypatch):
    """SIGTERM's KeyboardInterrupt can be dropped (raised inside a finalizer); the flag it set stops the
    store writer at its next step all the same, and nothing is left behind."""
    from fewshotkit.core import stop
    from fewshotkit.data.ingest.synthetic import ingest_synthetic

    monkeypatch.setattr(stop, "_requested", True)
    out = tmp_path / "s.h5"
    with pytest.raises(KeyboardInterrupt):
        ingest_synthetic(out, volumes=2, slices=4, size=32)
    assert not out.exists() and not list(tmp_path.glob(".s.h5*"))


def test_ms_cmrseg_codes_and_crop(tmp_path):
    from fewshotkit.data.ingest.ms_cmrseg import ingest_ms_cmrseg

    src = tmp_path / "src"
    src.mkdir()
    _pair(src, "3", shape=(270, 240, 4), labels=(0, 200, 500, 600))
    out = tmp_path / "cmr.h5"
    ingest_ms_cmrseg(src, out, quiet=True)
    s = SliceStore(out)
    assert s.shape("3") == (4, 256, 256) and s.classes == {1: "LV-MYO", 2: "LV-BP", 3: "RV"}
    source = np.asarray(nib.load(src / "label_3.nii.gz").dataobj).transpose(2, 1, 0)  # (z, y, x) 4 x 240 x 270
    np.testing.assert_array_equal(s.label("3")[:, 8:248, :] == 3, source[:, :, 7:263] == 600)
    raw = np.asarray(nib.load(src / "image_3.nii.gz").dataobj)
    assert s.pseudolabel_input("3").max() == pytest.approx(np.percentile(raw, 99.5), rel=1e-5)  # top 0.5 % clipped
    _pair(src, "4", labels=(0, 300))
    with pytest.raises(DataError, match=r"label_4.nii.gz' has unknown label values 300 .*200, 500, 600"):
        ingest_ms_cmrseg(src, tmp_path / "bad.h5", quiet=True)


def test_synapse_window_crop_resize_and_fold_statistics(tmp_path):
    from fewshotkit.data.ingest.synapse import ingest_synapse_ct

    for sub in ("img", "label"):
        (tmp_path / "Training" / sub).mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in (1, 2):
        hu = rng.uniform(-1000, 1000, (160, 160, 3)) + 300 * i
        lab = np.zeros((160, 160, 3))
        lab[40:120, 50:110] = 6
        nib.save(nib.Nifti1Image(hu, np.diag([0.8, 0.8, 3.0, 1])), tmp_path / "Training" / "img" / f"img000{i}.nii.gz")
        nib.save(nib.Nifti1Image(lab, np.diag([0.8, 0.8, 3.0, 1])), tmp_path / "Training" / "label" / f"label000{i}.nii.gz")
    out = tmp_path / "ct.h5"
    ingest_synapse_ct(tmp_path, out, size=64, quiet=True)
    s = SliceStore(out)
    assert s.volumes == ["0001", "0002"] and s.modality == "CT" and s.shape("0001") == (3, 64, 64) and s.classes[6] == "liver"
    raw = s.pseudolabel_input("0001")
    assert raw.min() >= 0 and raw.max() <= 255
    assert s.volume_attrs("0001")["spacing"] == pytest.approx([3.0, 0.8 * 96 / 64, 0.8 * 96 / 64])
    rows = np.flatnonzero((s.label("0001")[0] == 6).any(axis=1))
    assert rows[0] == pytest.approx((50 - 32) * 64 / 96, abs=1) and rows[-1] == pytest.approx((110 - 32) * 64 / 96, abs=1)
    s.normalize_with(["0001"])
    assert abs(float(s.image("0001").mean())) < 1e-3 and abs(float(s.image("0001").std()) - 1) < 1e-3
    assert s.image("0002").mean() > 0.1  # volume 2 is brighter than the "training" volume 1
    back = s.to_nifti("0001", s.label("0001"))
    assert back.shape == (160, 160, 3)


def _nrrd_pair(folder, key, suffix=".nrrd", direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    """An image/label pair in NRRD or MetaImage (``suffix``) on a SimpleITK grid (identity direction: LPS)."""
    from synthetic_scans import write_scan

    rng = np.random.default_rng(0)
    write_scan(folder / f"image_{key}{suffix}", rng.uniform(0, 500, (5, 30, 40)).astype(np.float32),
               direction=direction)
    write_scan(folder / f"label_{key}{suffix}", rng.choice([0, 1, 2], size=(5, 30, 40)).astype(np.uint8),
               direction=direction)


def test_scans_of_files_without_a_nifti_header_record_the_orientation_they_are_stored_in(tmp_path, run_cli):
    import h5py

    from fewshotkit.data.store.axes import stored_codes
    from fewshotkit.data.store.fingerprint import store_fingerprint

    src = tmp_path / "src"
    src.mkdir()
    for key in ("1", "2"):
        _nrrd_pair(src, key)
    _nrrd_pair(src, "3", direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))  # RAS
    _nrrd_pair(src, "4", ".mha")
    out = tmp_path / "s.h5"
    with pytest.warns(UserWarning, match=r"scans in 2 orientations \(LPS: 2, RAS: 1"):
        ingest_nifti(src, out, labels={1: "a", 2: "b"}, image_glob="image_*.nrrd", label_glob="label_*.nrrd",
                     quiet=True)
    ingest_nifti(src, tmp_path / "m.h5", labels={1: "a", 2: "b"}, image_glob="image_*.mha",
                 label_glob="label_*.mha", quiet=True)
    with SliceStore(tmp_path / "m.h5") as store:
        assert stored_codes(store.volume_attrs("4")) == "LPS"
    with SliceStore(out) as store:
        assert [stored_codes(store.volume_attrs(v)) for v in store.volumes] == ["LPS", "LPS", "RAS"]
        assert "nifti_header" not in store.volume_attrs("1")
        fingerprint = store_fingerprint(store)
    info = run_cli("store", "info", str(out), "--json")
    assert [v["orientation"] for v in json.loads(info.output)["volumes"]] == ["LPS", "LPS", "RAS"]
    with h5py.File(out, "a") as f:  # a store written before the axis codes were recorded
        for vid in ("1", "2", "3"):
            del f["volumes"][vid].attrs["axis_codes"]
    with SliceStore(out) as store:
        assert [stored_codes(store.volume_attrs(v)) for v in store.volumes] == [None, None, None]
        assert store_fingerprint(store) == fingerprint  # the codes are no part of the data's identity


def test_made_up_affines_record_no_orientation_and_nifti_files_theirs(tmp_path):
    from fewshotkit.data.ingest.synthetic import ingest_synthetic
    from fewshotkit.data.store.axes import stored_codes

    ingest_synthetic(tmp_path / "syn.h5", volumes=1, slices=4, size=32, quiet=True)
    with SliceStore(tmp_path / "syn.h5") as store:
        attrs = store.volume_attrs("1")
        assert "axis_codes" not in attrs and stored_codes(attrs) is None
    src = tmp_path / "src"
    src.mkdir()
    _pair(src, "1", affine=np.diag([-1.5, -1.5, 6.0, 1.0]))
    ingest_nifti(src, tmp_path / "n.h5", labels={1: "a", 2: "b"}, orientation="RAS", quiet=True)
    with SliceStore(tmp_path / "n.h5") as store:
        assert store.volume_attrs("1")["axis_codes"] == "RAS"  # where the reorientation took it


def test_scan_ids_natural_order_ranks_equal_keep_one_order_whatever_the_folder_lists(tmp_path, monkeypatch):
    from pathlib import Path

    from fewshotkit.data.ingest.common import pair_by_pattern

    for key in ("1", "01", "2", "10"):
        (tmp_path / f"image_{key}.nii.gz").touch()
        (tmp_path / f"label_{key}.nii.gz").touch()
    listed = Path.glob
    orders = []
    for reverse in (False, True):
        monkeypatch.setattr(Path, "glob", lambda self, pattern, r=reverse: sorted(listed(self, pattern), reverse=r))
        orders.append([key for key, _, _ in pair_by_pattern(tmp_path, "image_*.nii.gz", "label_*.nii.gz")])
    assert orders[0] == orders[1] == ["01", "1", "2", "10"]


def test_acdc_files_whose_ids_rank_equal_keep_one_order(tmp_path, monkeypatch):
    import h5py
    from pathlib import Path

    from fewshotkit.data.ingest.acdc import ingest_acdc

    src = tmp_path / "acdc"
    src.mkdir()
    for stem in ("patient1_frame01", "patient001_frame01"):
        with h5py.File(src / f"{stem}.h5", "w") as f:
            f["image"] = np.random.default_rng(0).uniform(0, 1, (3, 20, 20))
            f["label"] = np.zeros((3, 20, 20), np.uint8)
    listed = Path.glob
    orders = []
    for reverse in (False, True):
        monkeypatch.setattr(Path, "glob", lambda self, pattern, r=reverse: sorted(listed(self, pattern), reverse=r))
        out = ingest_acdc(src, tmp_path / f"{reverse}.h5", target_size=16, quiet=True)
        with SliceStore(out) as store:
            orders.append(store.volumes)
    assert orders[0] == orders[1] == ["patient001_frame01", "patient1_frame01"]


@pytest.mark.parametrize("given, stored", [("ct", "CT"), ("Mr", "MR")])
def test_modality_is_mr_or_ct_in_any_case_and_stored_upper_case(tmp_path, run_cli, given, stored):
    src = tmp_path / "src"
    src.mkdir()
    _pair(src, "1")
    out = tmp_path / "s.h5"
    result = run_cli("ingest", "nifti", str(src), "-o", str(out), "--labels", "1=a,2=b", "--modality", given)
    assert result.exit_code == 0, result.output
    assert SliceStore(out).modality == stored
    bad = run_cli("ingest", "nifti", str(src), "-o", str(tmp_path / "x.h5"), "--labels", "1=a,2=b",
                  "--modality", "PET")
    assert bad.exit_code == 2 and "'PET' is not one of" in bad.output and not (tmp_path / "x.h5").exists()
