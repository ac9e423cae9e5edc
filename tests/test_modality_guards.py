"""The modality warnings: eval of a store of another modality than the model's training store, and
segment of scans that look like another modality than the model was trained on."""

from __future__ import annotations

import json
import shutil
import warnings

import h5py
import nibabel as nib
import numpy as np
import pytest


def _modality_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "was trained on" in str(w.message)]


def test_eval_warns_when_the_store_holds_another_modality(fixed_run, synthetic_store, tmp_path, fresh_host):
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_checkpoint

    ct = tmp_path / "ct.h5"
    shutil.copyfile(synthetic_store, ct)
    with h5py.File(ct, "a") as f:
        f.attrs["modality"] = "CT"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate_checkpoint(fixed_run(), ct, folds=[0], classes=["liver"], run=EvalRun(device="cpu"))
        evaluate_checkpoint(fixed_run(), synthetic_store, folds=[0], classes=["liver"], run=EvalRun(device="cpu"))
    assert _modality_warnings(caught) == [f"checkpoint '{fixed_run()}' was trained on MR scans, the store holds CT"]


def _write(path, volume, dtype=np.float32):
    nib.save(nib.Nifti1Image(np.ascontiguousarray(volume.transpose(2, 1, 0)).astype(dtype), np.eye(4)), str(path))
    return path


def test_segment_warns_when_the_scans_look_like_another_modality(fixed_run, tmp_path, fresh_host):
    from fewshotkit.apps.segment import ScanFiles, segment_files
    from fewshotkit.data.ingest.synthetic import phantom

    run = fixed_run()
    assert json.loads((run / "run.json").read_text())["modality"] == "MR"
    image, label = phantom(3, 0, 12, 64)
    mr, ct = _write(tmp_path / "mr.nii.gz", image), _write(tmp_path / "ct.nii.gz", image - 1000.0)  # air at -1000
    mask = _write(tmp_path / "m.nii.gz", label, np.uint8)
    for scan, expected in ((mr, []), (ct, [f"checkpoint '{run}' was trained on MR, the query looks like CT"])):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            segment_files(run, ScanFiles(scan, mask, scan), tmp_path / f"p_{scan.name}", classes=1, device="cpu")
        assert _modality_warnings(caught) == expected


def test_segment_warns_of_a_support_and_query_of_two_modalities(fixed_run, tmp_path, fresh_host):
    """The modality is guessed from intensities (a tightly cropped CT can look like MR), so a
    mismatch warns and the user decides."""
    from fewshotkit.apps.segment import ScanFiles, segment_files
    from fewshotkit.data.ingest.synthetic import phantom

    image, label = phantom(3, 0, 12, 64)
    mr, ct = _write(tmp_path / "mr.nii.gz", image), _write(tmp_path / "ct.nii.gz", image - 1000.0)
    with pytest.warns(RuntimeWarning, match="looks like MR but query .* looks like CT"):
        segment_files(fixed_run(), ScanFiles(mr, _write(tmp_path / "m.nii.gz", label, np.uint8), ct),
                      tmp_path / "p.nii.gz", classes=1, device="cpu")
    assert (tmp_path / "p.nii.gz").exists()
