"""Label codes 0..65535: kept from the support label to the output, stored as compact indices with
the code map, and refused (one line, nothing written) when negative, fractional or above 65535."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import SimpleITK as sitk
from synthetic_scans import write_scan

CODES = {1: 200, 4: 500, 2: 600}  # phantom class -> code
NAMES = "200=LV-MYO,500=LV-BP,600=RV"


def coded(label: np.ndarray) -> np.ndarray:
    out = np.zeros(label.shape, np.uint16)
    for value, code in CODES.items():
        out[label == value] = code
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A phantom and its label map of codes 200/500/600, as NRRD files."""
    from fewshotkit.data.ingest.synthetic import phantom

    root = tmp_path_factory.mktemp("codes")
    image, label = phantom(5, 0, 12, 64)
    return write_scan(root / "image.nrrd", image.astype(np.int16)), write_scan(root / "label.nrrd", coded(label))


def test_codes_round_trip_from_support_to_output(run_cli, tiny_checkpoint, pair, tmp_path):
    image, label = pair
    out = tmp_path / "pred.nrrd"
    result = run_cli("segment", "--checkpoint", str(tiny_checkpoint), "--support", str(image), "--support-label",
                     str(label), "--class", "all", "--query", str(image), "--device", "cpu", "-o", str(out))
    assert result.exit_code == 0, result.output
    written = sitk.ReadImage(str(out))
    assert written.GetPixelID() == sitk.sitkUInt16
    assert set(np.unique(sitk.GetArrayFromImage(written))) == {0, 200, 500, 600}


def test_the_api_keeps_the_masks_codes(tiny_checkpoint, pair):
    import fewshotkit as fsk

    image, label = (sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in pair)
    model = fsk.load(tiny_checkpoint, device="cpu")
    labels = model.segment(image, image, label, classes="all")
    assert labels.dtype == np.uint16 and set(np.unique(labels)) == {0, 200, 500, 600}
    small = model.segment(image, image, (label == 500).astype(np.int64) * 255, classes=255)
    assert small.dtype == np.uint8 and set(np.unique(small)) == {0, 255}
    from_files = model.segment(pair[0], *pair, classes=[500, 200])
    assert from_files.dtype == np.uint16 and set(np.unique(from_files)) <= {0, 200, 500}


def test_ingest_stores_compact_indices_and_the_code_map(run_cli, pair, tmp_path):
    from fewshotkit.apps.segment_inputs import training_class_names
    from fewshotkit.data.store.reader import SliceStore

    src = tmp_path / "src"
    src.mkdir()
    for key in ("1", "2"):
        for kind, path in zip(("image", "label"), pair):
            (src / f"{kind}_{key}.nrrd").write_bytes(path.read_bytes())
    out = tmp_path / "s.h5"
    result = run_cli("ingest", "nifti", str(src), "-o", str(out), "--labels", NAMES, "--image-glob", "image_*.nrrd",
                     "--label-glob", "label_*.nrrd")
    assert result.exit_code == 0, result.output
    with SliceStore(out) as store:
        assert store.schema_version == 2
        assert store.classes == {1: "LV-MYO", 2: "LV-BP", 3: "RV"}
        assert store.label_codes == {1: 200, 2: 500, 3: 600}
        source = sitk.GetArrayFromImage(sitk.ReadImage(str(pair[1])))
        stored = store.label("1")
        assert stored.dtype == np.uint8
        for index, code in store.label_codes.items():
            np.testing.assert_array_equal(stored == index, source == code)
    assert training_class_names({"run": {"store": str(out)}}) == {200: "LV-MYO", 500: "LV-BP", 600: "RV"}


# the fingerprint of ingest_synthetic(volumes=2, slices=6, size=32, seed=0), as stores of schema version 1 had it
V1_FINGERPRINT = "v1:ae46e0c7bb215bc43af5b86ae0d85b34d5ec250be0378d7f093adb35f7df2633"


def test_stores_of_version_1_still_read_with_their_fingerprint(tmp_path):
    import shutil

    from fewshotkit.data.ingest.synthetic import ingest_synthetic
    from fewshotkit.data.store.fingerprint import store_fingerprint
    from fewshotkit.data.store.reader import SliceStore

    new = ingest_synthetic(tmp_path / "v2.h5", volumes=2, slices=6, size=32, seed=0, quiet=True)
    old = tmp_path / "v1.h5"
    shutil.copyfile(new, old)
    with h5py.File(old, "a") as handle:  # as written before the code map (and before pixel checksums)
        handle.attrs["schema_version"] = 1
        del handle.attrs["label_codes"]
        for volume in handle["volumes"].values():
            for key in ("image_sha256", "label_sha256"):
                del volume.attrs[key]
    with SliceStore(old) as v1, SliceStore(new) as v2:
        assert v1.schema_version == 1 and v1.label_codes == {1: 1, 2: 2, 3: 3, 4: 4} == v2.label_codes
        # a new store's fingerprint adds its pixels' part: the part before it is the old one
        assert store_fingerprint(v1) == store_fingerprint(v2).split("+")[0] == V1_FINGERPRINT
    with h5py.File(new, "a") as handle:  # a code map that is not the identity is part of the data
        handle.attrs["label_codes"] = '{"1": 200, "2": 2, "3": 3, "4": 4}'
    with SliceStore(new) as coded_store:
        assert store_fingerprint(coded_store) != V1_FINGERPRINT


@pytest.mark.parametrize("value, message", [(-3, "negative label value -3"), (2.5, "non-integer label values"),
                                            (70000, "label value 70000, above 65535")])
def test_bad_codes_in_a_support_label_are_one_line(run_cli, tiny_checkpoint, pair, tmp_path, value, message):
    from synthetic_scans import read_back

    label = sitk.GetArrayFromImage(read_back(pair[1])).astype(np.float32)
    label[label == 500] = value
    bad = write_scan(tmp_path / "bad.nrrd", label)
    out = tmp_path / "pred.nrrd"
    result = run_cli("segment", "--checkpoint", str(tiny_checkpoint), "--support", str(pair[0]), "--support-label",
                     str(bad), "--class", "200", "--query", str(pair[0]), "--device", "cpu", "-o", str(out))
    assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("spec, message", [("-5=a", "label code -5 is negative"), ("2.5=a", "label code 2.5 is fractional"),
                                           ("70000=a", "label code 70000 is above 65535"),
                                           ("x=a", "'x' is not a label code")])
def test_bad_codes_in_labels_are_one_line(run_cli, pair, tmp_path, spec, message):
    out = tmp_path / "s.h5"
    result = run_cli("ingest", "nifti", str(pair[0].parent), "-o", str(out), "--labels", spec)
    assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("value, message", [(-1, "negative"), (0.5, "non-integer"), (65536, "above 65535")])
def test_bad_codes_in_an_api_mask_are_one_line(tiny_checkpoint, pair, value, message):
    import fewshotkit as fsk
    from fewshotkit.core.errors import DataError

    image, label = (sitk.GetArrayFromImage(sitk.ReadImage(str(p))).astype(np.float64) for p in pair)
    label[label == 600] = value
    with pytest.raises(DataError, match=message):
        fsk.load(tiny_checkpoint, device="cpu").segment(image, image, label, classes=200)
