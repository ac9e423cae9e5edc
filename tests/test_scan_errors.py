"""Bad scans and outputs: one line naming the file or option and what to do, nothing written;
4D scans segmented and ingested one frame at a time (``--frame``)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from synthetic_scans import write_scan, write_series

UID_A, UID_B = "1.2.826.0.1.3680043.8.498.21", "1.2.826.0.1.3680043.8.498.22"


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    from fewshotkit.data.ingest.synthetic import phantom

    root = tmp_path_factory.mktemp("bad")
    image, label = phantom(5, 0, 12, 64)
    image = np.round(image).astype(np.int16)
    out = {"root": root, "image": write_scan(root / "image.nrrd", image),
           "label": write_scan(root / "label.nrrd", label.astype(np.uint8))}
    out["shifted_label"] = write_scan(root / "shifted.nrrd", label.astype(np.uint8), origin=(30.0, -40.25, 7.0))
    two = root / "two_series"
    write_series(two, image, uid=UID_A, description="T2 axial", prefix="a_")
    write_series(two, image[:, ::-1], uid=UID_B, description="T2 axial mirrored", prefix="b_")
    out["two"] = two
    empty = root / "not_dicom"
    empty.mkdir()
    (empty / "notes.txt").write_text("no scan here")
    out["empty"] = empty
    cine = root / "cine"
    cine.mkdir()
    four = np.stack([image, image[:, ::-1], image[:, :, ::-1]], axis=-1).transpose(2, 1, 0, 3)  # (x, y, z, t)
    nib.save(nib.Nifti1Image(four.astype(np.int16), np.diag([1.4, 1.4, 5.0, 1.0])), str(cine / "image_1.nii.gz"))
    labels4 = np.stack([label] * 3, axis=-1).transpose(2, 1, 0, 3).astype(np.uint8)
    nib.save(nib.Nifti1Image(labels4, np.diag([1.4, 1.4, 5.0, 1.0])), str(cine / "label_1.nii.gz"))
    out["cine"], out["frames"] = cine / "image_1.nii.gz", four
    return out


def _segment(run_cli, checkpoint, scans, output, *extra, support=None, label=None, query=None):
    return run_cli("segment", "--checkpoint", str(checkpoint), "--support", str(support or scans["image"]),
                   "--support-label", str(label or scans["label"]), "--class", "1", "--query",
                   str(query or scans["image"]), "--device", "cpu", "-o", str(output), *extra)


def _one_line(result, *parts):
    text = result.output.strip()
    assert result.exit_code == 1, text
    assert len(text.splitlines()) == 1 and all(p in text for p in parts), text


def test_two_series_in_a_folder_are_listed_and_series_picks_one(run_cli, tiny_checkpoint, scans, tmp_path):
    out = tmp_path / "p.nii.gz"
    result = _segment(run_cli, tiny_checkpoint, scans, out, query=scans["two"])
    _one_line(result, "holds 2 DICOM series", UID_A, UID_B, "T2 axial mirrored", "--series UID")
    assert not out.exists()
    picked = _segment(run_cli, tiny_checkpoint, scans, out, "--series", UID_B, query=scans["two"])
    assert picked.exit_code == 0, picked.output
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert written.shape == (12, 64, 64)


def test_a_series_uid_that_no_folder_holds_is_refused(run_cli, tiny_checkpoint, scans, tmp_path):
    out = tmp_path / "p.nii.gz"
    typo = UID_B + "9"
    result = _segment(run_cli, tiny_checkpoint, scans, out, "--series", UID_B, "--series", typo, query=scans["two"])
    _one_line(result, f"--series {typo}", "no DICOM folder given holds this series", UID_B)
    files = _segment(run_cli, tiny_checkpoint, scans, out, "--series", UID_A)  # no folder read at all
    _one_line(files, f"--series {UID_A}", "no scan was read from a DICOM folder")
    assert not out.exists()


@pytest.mark.parametrize("case, parts", [
    ("empty", ["holds no readable DICOM series (1 file)"]),
    ("grid", ["lies on another grid than its image", "resample the label"]),
    ("suffix", ["no writer knows this file type", ".nrrd", ".dcm"]),
    ("seg-of-nrrd", ["a DICOM SEG output references a DICOM series"]),
])
def test_bad_input_is_one_line_and_nothing_is_written(run_cli, tiny_checkpoint, scans, tmp_path, case, parts):
    out = tmp_path / {"suffix": "p.png", "seg-of-nrrd": "p.dcm"}.get(case, "p.nrrd")
    extra = {"empty": {"query": scans["empty"]}, "grid": {"label": scans["shifted_label"]}}.get(case, {})
    _one_line(_segment(run_cli, tiny_checkpoint, scans, out, **extra), *parts)
    assert not any(tmp_path.iterdir())


def test_without_highdicom_the_seg_output_names_the_extra(run_cli, tiny_checkpoint, scans, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "highdicom", None)  # as if the [dicom] extra were not installed
    query = write_series(tmp_path / "series", np.round(sitk.GetArrayFromImage(sitk.ReadImage(str(scans["image"])))))
    out = tmp_path / "p.dcm"
    _one_line(_segment(run_cli, tiny_checkpoint, scans, out, query=query), "needs highdicom", "fewshotkit[dicom]")
    assert not out.exists()


def test_a_4d_scan_needs_a_frame(run_cli, tiny_checkpoint, scans, tmp_path):
    cine = scans["cine"]
    out = tmp_path / "p.nii.gz"
    _one_line(_segment(run_cli, tiny_checkpoint, scans, out, query=cine), "4D scan of 3 frames", "--frame N (0..2)")
    _one_line(_segment(run_cli, tiny_checkpoint, scans, out, "--frame", "3", query=cine), "--frame 3", "frames 0..2")
    assert not out.exists()
    result = _segment(run_cli, tiny_checkpoint, scans, out, "--frame", "1", query=cine)
    assert result.exit_code == 0, result.output
    written = nib.load(out)
    assert written.shape == (64, 64, 12) and np.array_equal(written.affine, nib.load(cine).affine)


def test_ingest_takes_one_frame_of_4d_pairs(run_cli, scans, tmp_path):
    from fewshotkit.data.store.reader import SliceStore

    out = tmp_path / "s.h5"
    args = ["ingest", "nifti", str(scans["cine"].parent), "-o", str(out), "--labels", "1=liver,2=kidney,3=left,4=spleen"]
    _one_line(run_cli(*args), "4D scan of 3 frames", "--frame N")
    assert not out.exists()
    result = run_cli(*args, "--frame", "2", "--clip", "never")
    assert result.exit_code == 0, result.output
    with SliceStore(out) as store:
        frame = scans["frames"][..., 2].transpose(2, 1, 0)  # (Z, H, W)
        np.testing.assert_array_equal(store.pseudolabel_input("1"), frame)
        assert store.preprocessing["frame"] == 2


def test_the_api_takes_a_frame_of_a_4d_file(tiny_checkpoint, scans):
    import fewshotkit as fsk
    from fewshotkit.core.errors import DataError

    model = fsk.load(tiny_checkpoint, device="cpu")
    with pytest.raises(DataError, match=r"4D scan of 3 frames; choose one with frame=N \(0\.\.2\)"):
        model.segment(scans["cine"], scans["image"], scans["label"], classes=1)
    labels = model.segment(scans["cine"], scans["image"], scans["label"], classes=1, frame=0)
    assert labels.shape == (12, 64, 64) and set(np.unique(labels)) <= {0, 1}


def test_the_api_checks_classes_and_spacing_in_its_own_words(tiny_checkpoint, scans):
    import fewshotkit as fsk
    from fewshotkit.core.errors import DataError, FewshotkitError

    model = fsk.load(tiny_checkpoint, device="cpu")
    labels = model.segment(scans["image"], scans["image"], scans["label"], classes=np.int64(1),
                           spacing=np.array([3.0, 1.0, 1.0]))
    assert labels.shape == (12, 64, 64)
    with pytest.raises(FewshotkitError, match=r"query: spacing must be three positive voxel sizes"):
        model.segment(scans["image"], scans["image"], scans["label"], classes=1, spacing=(1.0, 1.0))
    with pytest.raises(DataError, match=r"^classes: label code 0 is the background"):
        model.segment(scans["image"], scans["image"], scans["label"], classes="0")


def test_a_dicom_series_given_as_the_current_folder_gets_its_output_beside_it(tmp_path, monkeypatch):
    from fewshotkit.data.io.formats import DICOM, default_output

    series = tmp_path / "series1"
    series.mkdir()
    monkeypatch.chdir(series)
    assert default_output(".", DICOM).resolve() == tmp_path / "series1_seg.nii.gz"
    assert default_output("../series1", DICOM).resolve() == tmp_path / "series1_seg.nii.gz"


@pytest.mark.parametrize("damage, message", [("gap", r"not evenly spaced \(a gap of 10 mm where the others are 5 mm"),
                                             ("repeat", "at a position another slice holds")])
def test_a_dicom_series_that_is_not_one_grid_is_refused(tmp_path, damage, message):
    from synthetic_scans import write_series

    from fewshotkit.core.errors import DataError
    from fewshotkit.data.io.reader import read_scan

    series = write_series(tmp_path / "series", np.arange(6 * 8 * 8, dtype=np.int16).reshape(6, 8, 8))
    assert read_scan(series).array.shape == (6, 8, 8)
    if damage == "gap":
        (series / "slice_003.dcm").unlink()
    else:
        write_series(tmp_path / "series", np.zeros((1, 8, 8), np.int16), prefix="echo2_")
    with pytest.raises(DataError, match=message):
        read_scan(series)
