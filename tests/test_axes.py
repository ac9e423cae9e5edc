"""Scan orientation: axis codes, to another orientation and back, spacing, and the model's own."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

from conftest import pseudolabelled_store
from fewshotkit.data.store.axes import axis_codes, mixed_orientations, reorientation


@pytest.mark.parametrize("codes, keeps_slices", [("LPS", True), ("RAI", True), ("ASL", False), ("SLP", False)])
def test_a_volume_stored_in_any_orientation_comes_back_exactly(codes, keeps_slices):
    xyz = np.random.default_rng(0).random((5, 6, 7))
    ras = nib.Nifti1Image(xyz, np.diag([1.5, 2.0, 3.0, 1.0]))
    other = ras.as_reoriented(ornt_transform(io_orientation(ras.affine), axcodes2ornt(tuple(codes))))
    assert axis_codes(other.affine) == codes
    zhw = np.asarray(other.dataobj).transpose(2, 1, 0)
    move = reorientation(other.affine, "RAS")
    assert np.array_equal(move.apply(zhw), xyz.transpose(2, 1, 0)) and np.array_equal(move.undo(move.apply(zhw)), zhw)
    zooms = other.header.get_zooms()
    assert move.spacing((zooms[2], zooms[1], zooms[0])) == (3.0, 2.0, 1.5)  # RAS (z, y, x) spacing
    assert move.shape(zhw.shape) == (7, 6, 5)  # RAS (Z, H, W)
    assert move.keeps_slice_axis is keeps_slices
    if keeps_slices:  # slice 1 of the scan is slice_index(1) of the reoriented one (in-plane flips aside)
        moved_slice = move.apply(zhw)[move.slice_index(1, zhw.shape[0])]
        assert np.array_equal(np.sort(moved_slice, axis=None), np.sort(zhw[1], axis=None))


def test_the_same_orientation_is_left_alone():
    volume = np.zeros((3, 4, 5))
    move = reorientation(np.diag([-1.0, -1.0, 1.0, 1.0]), "LPS")
    assert move.identity and move.apply(volume) is volume and move.undo(volume) is volume
    assert mixed_orientations({"1": "RAS", "2": "RAS"}) is None
    assert "RAS: 2, LPS: 1; not RAS: '3' (LPS)" in mixed_orientations({"1": "RAS", "2": "RAS", "3": "LPS"})


def test_the_model_orientation_is_read_from_the_run_or_else_its_store(tmp_path):
    from fewshotkit.data.ingest.nifti import ingest_nifti
    from fewshotkit.apps.segment_inputs import model_orientation
    from fewshotkit.data.store.axes import scans_orientation
    from fewshotkit.data.store.reader import SliceStore

    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for key in ("1", "2"):
        for kind, data in (("image", rng.uniform(0, 500, (32, 32, 4))), ("label", rng.choice([0, 1], (32, 32, 4)))):
            nib.save(nib.Nifti1Image(data.astype(np.float64), np.diag([-1.5, -1.5, 6.0, 1.0])),
                     str(src / f"{kind}_{key}.nii.gz"))
    nifti = ingest_nifti(src, tmp_path / "lps.h5", labels={1: "a"}, target_size=32, quiet=True)
    phantoms = pseudolabelled_store(tmp_path / "syn.h5", volumes=3, seed=0, slices=4, size=32)
    for path, codes in ((nifti, "LPS"), (phantoms, None)):  # phantoms' affines are made up: not known
        with SliceStore(path) as store:
            volumes = list(store.volumes)
            assert scans_orientation(store, volumes) == codes
        assert model_orientation({"run": {"store": str(path), "fold_train": volumes}}) == codes  # runs before the key
    assert model_orientation({"run": {"orientation": "LAS", "store": str(nifti)}}) == "LAS"
    assert model_orientation({"run": {"orientation": None, "store": str(nifti)}}) is None  # recorded as unknown
    assert model_orientation({"run": {"store": str(tmp_path / "gone.h5"), "fold_train": ["1"]}}) is None
    assert model_orientation({}) is None
