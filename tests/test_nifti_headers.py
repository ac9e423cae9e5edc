"""NIfTI headers as scans carry them: NIfTI-2 queries, an sform that disagrees with the qform,
single-frame 4D files and 2D images, and the label header a viewer reads."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from fewshotkit.core.errors import DataError
from fewshotkit.data.io.reader import read_scan
from fewshotkit.data.io.writer import write_labels


def _save(img, path):
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("image", [nib.Nifti1Image, nib.Nifti2Image], ids=["nifti-1", "nifti-2"])
def test_labels_of_a_query_keep_its_grid_and_read_as_labels(image, tmp_path):
    affine = np.array([[0, 0, 3.0, -40], [-0.8, 0, 0, 90], [0, 0.8, 0, -12], [0, 0, 0, 1]])
    query = image(np.linspace(-1000, 3000, 4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6), affine)
    query.header["cal_min"], query.header["cal_max"] = -1000, 3071
    query.header.set_intent("t test", (3,))
    scan = read_scan(_save(query, tmp_path / "query.nii.gz"))
    labels = np.zeros(scan.array.shape, dtype=np.uint8)
    labels[1:3, 1:3, 2:4] = 2
    write_labels(tmp_path / "labels.nii.gz", labels, scan)
    back = nib.load(str(tmp_path / "labels.nii.gz"))
    assert isinstance(back, image) and back.get_data_dtype() == np.uint8
    np.testing.assert_allclose(back.affine, affine, atol=1e-5)
    assert (back.header["cal_min"], back.header["cal_max"]) == (0, 2), "a viewer shows codes 0..2, not a CT window"
    assert back.header.get_intent()[0] == "none"
    np.testing.assert_array_equal(np.asarray(back.dataobj).transpose(2, 1, 0), labels)


def test_the_spacing_is_that_of_the_grid_the_affine_places(tmp_path):
    img = nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4))
    img.set_qform(np.diag([1.0, 1.0, 3.0, 1.0]), code=1)
    img.set_sform(np.diag([0.7, 0.7, 3.0, 1.0]), code=2)  # nibabel places the grid by the sform
    scan = read_scan(_save(img, tmp_path / "scan.nii.gz"))
    np.testing.assert_allclose(scan.spacing, (3.0, 0.7, 0.7), rtol=1e-6)


def test_single_frames_and_2d_images_are_one_line_errors(tmp_path):
    single = _save(nib.Nifti1Image(np.zeros((4, 5, 6, 1), np.float32), np.eye(4)), tmp_path / "one.nii.gz")
    assert read_scan(single, frame=0).array.shape == (6, 5, 4)
    with pytest.raises(DataError, match=r"--frame 3: .* has one frame \(0\)"):
        read_scan(single, frame=3)
    flat = _save(nib.Nifti1Image(np.zeros((4, 5), np.float32), np.eye(4)), tmp_path / "flat.nii.gz")
    with pytest.raises(DataError, match="is a 2D image .* save it as a 3D volume of one slice"):
        read_scan(flat)


@pytest.mark.parametrize("suffix, voxels", [(".nhdr", "labels.raw.gz"), (".mhd", "labels.zraw")])
def test_a_detached_header_replaces_its_pair_and_spares_a_stranger(suffix, voxels, tmp_path):
    from fewshotkit.core.errors import FewshotkitError

    scan = read_scan(_save(nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4)), tmp_path / "q.nii.gz"))
    labels = np.zeros(scan.array.shape, np.uint8)
    (tmp_path / voxels).write_bytes(b"someone else's file")
    with pytest.raises(FewshotkitError, match=f"its voxel file .*{voxels}' would replace a file"):
        write_labels(tmp_path / f"labels{suffix}", labels, scan)
    assert (tmp_path / voxels).read_bytes() == b"someone else's file" and not (tmp_path / f"labels{suffix}").exists()
    (tmp_path / voxels).unlink()
    write_labels(tmp_path / f"labels{suffix}", labels, scan)
    labels[1, 1, 1] = 3
    write_labels(tmp_path / f"labels{suffix}", labels, scan)  # its own pair: replaced
    assert read_scan(tmp_path / f"labels{suffix}").array.max() == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["q.nii.gz", f"labels{suffix}", voxels])
