"""Scans in every format: read as one (Z, H, W) array with its grid, segmented, and written back in
the query's format with its size, origin, spacing and direction (read back with SimpleITK alone)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from synthetic_scans import read_back, rotation, write_scan, write_series

GRID = {"origin": (12.5, -40.25, 7.0), "spacing": (1.4, 1.3, 5.0), "direction": rotation(20.0)}
FORMATS = {".nii.gz": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "metaimage", ".mhd": "metaimage",
           "dicom": "dicom"}
CODES = {1: 200, 4: 500, 2: 600}  # phantom class -> the code its label file uses (3 left out)


def coded(label: np.ndarray) -> np.ndarray:
    out = np.zeros(label.shape, np.uint16)
    for value, code in CODES.items():
        out[label == value] = code
    return out


@pytest.fixture
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope="module")
def phantoms():
    from fewshotkit.data.ingest.synthetic import phantom

    return {name: phantom(5, index, 12, 64) for name, index in (("support", 0), ("query", 1))}


def query_in(fmt: str, folder, image: np.ndarray):
    if fmt == "dicom":
        return write_series(folder / "query", image, **GRID)
    return write_scan(folder / f"query{fmt}", image.astype(np.int16), **GRID)


def test_the_affine_is_nibabels_of_the_same_nifti(tmp_path):
    import nibabel as nib

    from fewshotkit.data.io.itk import Geometry

    path = write_scan(tmp_path / "s.nii", np.zeros((4, 5, 6), np.int16), **GRID)
    geometry = Geometry.of(sitk.ReadImage(str(path)))
    np.testing.assert_allclose(geometry.affine, nib.load(path).affine, atol=1e-5)  # NIfTI holds float32
    back = Geometry.from_affine(geometry.affine)
    np.testing.assert_allclose(back.origin, geometry.origin, rtol=0, atol=1e-12)
    np.testing.assert_allclose(back.spacing, geometry.spacing, rtol=1e-15)
    np.testing.assert_allclose(back.direction, geometry.direction, rtol=0, atol=1e-15)


@pytest.mark.parametrize("fmt", [".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", "dicom"])
def test_every_format_reads_one_scan(fmt, tmp_path, phantoms):
    from fewshotkit.data.io.itk import Geometry
    from fewshotkit.data.io.reader import read_scan
    from fewshotkit.data.store.axes import axis_codes

    image = np.round(phantoms["query"][0]).astype(np.int16)
    scan = read_scan(query_in(fmt, tmp_path, image))
    assert scan.format == FORMATS[fmt]
    np.testing.assert_array_equal(scan.array, image)
    expected = Geometry(GRID["origin"], GRID["spacing"], GRID["direction"])
    np.testing.assert_allclose(scan.affine, expected.affine, rtol=0, atol=1e-4 if fmt == ".nii.gz" else 1e-6)
    assert scan.spacing == pytest.approx((5.0, 1.3, 1.4), abs=1e-5)
    assert axis_codes(scan.affine) == axis_codes(expected.affine)


def _same_grid(output, query, exact: bool) -> None:
    """Size, origin, spacing and direction of two files as SimpleITK reads them: to the last bits
    (NRRD stores direction x spacing, so a rewritten file may differ in the last bit) or, with a
    NIfTI between, to NIfTI's float32."""
    out, ref = read_back(output), read_back(query)
    assert out.GetSize() == ref.GetSize()
    tolerance = 1e-12 if exact else 1e-5
    for getter in ("GetOrigin", "GetSpacing", "GetDirection"):
        np.testing.assert_allclose(getattr(out, getter)(), getattr(ref, getter)(), rtol=0, atol=tolerance,
                                   err_msg=getter)


@pytest.mark.parametrize("fmt, suffix", [(".nii.gz", ".nii.gz"), (".nrrd", ".nrrd"), (".mha", ".mha"),
                                         ("dicom", ".nii.gz")])
def test_segment_writes_the_querys_format_on_its_grid(fmt, suffix, run_cli, checkpoint, phantoms, tmp_path):
    image, label = phantoms["support"]
    support = write_scan(tmp_path / "support.nrrd", image.astype(np.int16))
    support_label = write_scan(tmp_path / "support_label.nrrd", coded(label))
    query = query_in(fmt, tmp_path, np.round(phantoms["query"][0]))
    result = run_cli("segment", "--checkpoint", str(checkpoint), "--support", str(support), "--support-label",
                     str(support_label), "--class", "all", "--query", str(query), "--device", "cpu")
    assert result.exit_code == 0, result.output
    output = tmp_path / f"query_seg{suffix}"
    assert output.is_file()
    _same_grid(output, query, exact=fmt in (".nrrd", ".mha"))
    values = sitk.GetArrayFromImage(read_back(output))
    assert values.dtype == np.uint16 and set(np.unique(values)) <= {0, *CODES.values()}


@pytest.mark.parametrize("suffix", [".nii.gz", ".nhdr", ".mhd"])
def test_dash_o_picks_another_format(suffix, run_cli, checkpoint, phantoms, tmp_path):
    image, label = phantoms["support"]
    support = write_scan(tmp_path / "support.mha", image.astype(np.int16), **GRID)
    support_label = write_scan(tmp_path / "label.mha", coded(label), **GRID)
    query = query_in(".nrrd", tmp_path, np.round(phantoms["query"][0]))
    output = tmp_path / f"pred{suffix}"
    result = run_cli("segment", "--checkpoint", str(checkpoint), "--support", str(support), "--support-label",
                     str(support_label), "--class", "500", "--query", str(query), "--device", "cpu", "-o", str(output))
    assert result.exit_code == 0, result.output
    _same_grid(output, query, exact=suffix != ".nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("pred", ".pred"))) == sorted(
        {".nii.gz": ["pred.nii.gz"], ".nhdr": ["pred.nhdr", "pred.raw.gz"], ".mhd": ["pred.mhd", "pred.zraw"]}[suffix])


def test_a_dicom_seg_references_the_query_series(run_cli, checkpoint, phantoms, tmp_path):
    pytest.importorskip("highdicom", reason="DICOM SEG output needs the [dicom] extra")
    import pydicom

    image, label = phantoms["support"]
    support = write_scan(tmp_path / "support.nii.gz", image.astype(np.int16))
    support_label = write_scan(tmp_path / "support_label.nii.gz", coded(label))
    query = write_series(tmp_path / "query", np.round(phantoms["support"][0]), uid="1.2.826.0.1.3680043.8.498.77")
    output = tmp_path / "seg.dcm"
    result = run_cli("segment", "--checkpoint", str(checkpoint), "--support", str(support), "--support-label",
                     str(support_label), "--class", "all", "--query", str(query), "--device", "cpu", "-o", str(output))
    assert result.exit_code == 0, result.output
    seg = pydicom.dcmread(output)
    assert seg.Modality == "SEG" and seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == "1.2.826.0.1.3680043.8.498.77"
    instances = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in query.iterdir()}
    assert {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence} == instances
    labels = [s.SegmentLabel for s in seg.SegmentSequence]
    assert labels and all(label.endswith(("(200)", "(500)", "(600)")) for label in labels)
    assert seg.Rows == 64 and seg.Columns == 64


def test_ingest_reads_dicom_folders_with_nrrd_labels(run_cli, phantoms, tmp_path):
    from fewshotkit.data.store.reader import SliceStore

    src = tmp_path / "src"
    for number, (key, (image, label)) in enumerate(phantoms.items()):
        write_series(src / "images" / key, np.round(image), uid=f"1.2.826.0.1.3680043.8.498.3{number}", **GRID)
        (src / "labels").mkdir(parents=True, exist_ok=True)
        write_scan(src / "labels" / f"{key}.nrrd", coded(label), **GRID)
    out = tmp_path / "s.h5"
    result = run_cli("ingest", "nifti", str(src), "-o", str(out), "--labels", "200=LV-MYO,500=LV-BP,600=RV",
                     "--image-glob", "images/*", "--label-glob", "labels/*.nrrd", "--clip", "never")
    assert result.exit_code == 0, result.output
    with SliceStore(out) as store:
        assert store.volumes == ["query", "support"] and store.label_codes == {1: 200, 2: 500, 3: 600}
        np.testing.assert_array_equal(store.pseudolabel_input("query"), np.round(phantoms["query"][0]))
        np.testing.assert_array_equal(store.label("support") == 2, phantoms["support"][1] == 4)  # code 500
        assert store.volume_attrs("query")["spacing"] == pytest.approx([5.0, 1.3, 1.4])
