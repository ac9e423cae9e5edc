"""``fewshotkit ingest msd``: the MSD / nnU-Net raw layout on tiny fake datasets, bad layouts, and an
MSD copy of CHAOS-T2 scans giving the chaos-t2 preset's store."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

MSD_LABELS = {"0": "background", "1": "liver", "2": "spleen"}
V2_LABELS = {"background": 0, "liver": 1, "spleen": 2}


def _save(path, array_xyz, dtype=np.float32):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array_xyz, dtype=dtype), np.diag([1.5, 1.5, 4.0, 1.0])), str(path))


def fake_dataset(root, *, layout="v2", cases=("case_001", "case_002", "case_010"), labels=None, channels=None):
    """A tiny dataset: 24 x 20 x 6 scans with a liver (1) block and a spleen (2) block."""
    rng = np.random.default_rng(0)
    meta = {"name": "Fake", "labels": labels or (V2_LABELS if layout == "v2" else MSD_LABELS)}
    meta["channel_names" if layout == "v2" else "modality"] = channels or {"0": "T2"}
    if layout == "v2":
        meta["file_ending"] = ".nii.gz"
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(meta))
    for i, case in enumerate(cases):
        label = np.zeros((24, 20, 6), np.uint8)
        label[2:10, 3:12, 1:5] = 1
        label[14:20, 8:15, 2 + i % 2 : 5] = 2
        image = rng.normal(100 + 50 * label, 5.0)
        suffix = "_0000" if layout == "v2" else ""
        _save(root / "imagesTr" / f"{case}{suffix}.nii.gz", image)
        _save(root / "labelsTr" / f"{case}.nii.gz", label, np.uint8)
    return root


@pytest.mark.parametrize("layout", ["v2", "msd"])
def test_both_layouts_ingest_with_class_names_from_dataset_json(run_cli, tmp_path, layout):
    from fewshotkit.data.store.reader import SliceStore

    src = fake_dataset(tmp_path / "Dataset001_Fake", layout=layout)
    (src / "imagesTr" / "._case_001.nii.gz").write_bytes(b"macOS resource fork")  # ignored
    out = tmp_path / "fake.h5"
    result = run_cli("ingest", "msd", str(src), "-o", str(out))
    assert result.exit_code == 0, result.output
    with SliceStore(out) as store:
        assert store.classes == {1: "liver", 2: "spleen"} and store.preset == "msd" and store.modality == "MR"
        assert store.volumes == ["case_001", "case_002", "case_010"]
        assert store.shape("case_002") == (6, 20, 24)
        label = np.asarray(nib.load(src / "labelsTr" / "case_002.nii.gz").dataobj).transpose(2, 1, 0)
        assert np.array_equal(store.label("case_002"), label)
        assert store.preprocessing["layout"] == ("nnU-Net v2" if layout == "v2" else "MSD")


def test_ct_channel_and_resize(tmp_path):
    from fewshotkit.data.ingest.msd import ingest_msd
    from fewshotkit.data.store.reader import SliceStore

    src = fake_dataset(tmp_path / "ct", channels={"0": "CT"})
    ingest_msd(src, tmp_path / "ct.h5", target_size=16, resize=True, quiet=True, limit=2)
    with SliceStore(tmp_path / "ct.h5") as store:
        assert store.modality == "CT" and len(store.volumes) == 2 and store.shape("case_001") == (6, 16, 16)


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no-json", "has no dataset.json"),
        ("bad-json", "is not valid JSON"),
        ("no-labels", "has no 'labels' table"),
        ("regions", "region-based labels"),
        ("two-channels-json", "lists 2 channels"),
        ("second-channel-file", "is channel 1 of case 'case_001'"),
        ("4d-image", "holds 2 channels (a 4D image)"),
        ("image-without-label", "has no label"),
        ("label-without-image", "has no image"),
        ("unknown-label-value", "unknown label values 7"),
        ("duplicate-name", "is given to labels 1 and 2"),
    ],
)
def test_bad_layouts_are_one_line_errors(fresh_host, tmp_path, capsys, breakage, message):
    from fewshotkit.cli import main

    src = fake_dataset(tmp_path / "ds", layout="msd" if breakage == "4d-image" else "v2")
    meta = json.loads((src / "dataset.json").read_text())
    if breakage == "no-json":
        (src / "dataset.json").unlink()
    elif breakage == "bad-json":
        (src / "dataset.json").write_text("{labels: ")
    elif breakage in ("no-labels", "regions", "two-channels-json", "duplicate-name"):
        if breakage == "no-labels":
            del meta["labels"]
        elif breakage == "regions":
            meta["labels"] = {"background": 0, "liver": [1, 2]}
        elif breakage == "duplicate-name":
            meta["labels"] = {"background": 0, "Liver": 1, "liver": 2}
        else:
            meta["channel_names"] = {"0": "T1", "1": "T2"}
        (src / "dataset.json").write_text(json.dumps(meta))
    elif breakage == "second-channel-file":
        shutil.copy(src / "imagesTr" / "case_001_0000.nii.gz", src / "imagesTr" / "case_001_0001.nii.gz")
    elif breakage == "4d-image":
        _save(src / "imagesTr" / "case_002.nii.gz", np.zeros((24, 20, 6, 2)))
    elif breakage == "image-without-label":
        (src / "labelsTr" / "case_010.nii.gz").unlink()
    elif breakage == "label-without-image":
        (src / "imagesTr" / "case_010_0000.nii.gz").unlink()
    elif breakage == "unknown-label-value":
        _save(src / "labelsTr" / "case_002.nii.gz", np.full((24, 20, 6), 7), np.uint8)
    out = tmp_path / "out.h5"
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "msd", str(src), "-o", str(out)])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.data
def test_msd_copy_of_chaos_equals_the_chaos_preset(chaos_dir, tmp_path):
    """An MSD-layout copy of three CHAOS-T2 scans gives the chaos-t2 store's images, labels and classes."""
    from fewshotkit.data.ingest.chaos import CLASSES, ingest_chaos_t2
    from fewshotkit.data.ingest.msd import ingest_msd
    from fewshotkit.data.store.reader import SliceStore

    pids = (1, 2, 3)
    plain, msd = tmp_path / "plain", tmp_path / "Task099_ChaosT2"
    plain.mkdir()
    for folder in ("imagesTr", "labelsTr"):
        (msd / folder).mkdir(parents=True)
    for pid in pids:
        for kind in ("image", "label"):
            shutil.copy(chaos_dir / f"{kind}_{pid}.nii.gz", plain / f"{kind}_{pid}.nii.gz")
        shutil.copy(chaos_dir / f"image_{pid}.nii.gz", msd / "imagesTr" / f"chaos_{pid:03d}_0000.nii.gz")
        shutil.copy(chaos_dir / f"label_{pid}.nii.gz", msd / "labelsTr" / f"chaos_{pid:03d}.nii.gz")
    labels = {"background": 0, **{name: value for value, name in CLASSES.items()}}
    (msd / "dataset.json").write_text(json.dumps({"name": "ChaosT2", "labels": labels,
                                                  "channel_names": {"0": "T2"}, "file_ending": ".nii.gz"}))
    ingest_chaos_t2(plain, tmp_path / "chaos.h5", quiet=True)
    ingest_msd(msd, tmp_path / "msd.h5", target_size=256, quiet=True)
    with SliceStore(tmp_path / "chaos.h5") as a, SliceStore(tmp_path / "msd.h5") as b:
        assert a.classes == b.classes == CLASSES and a.modality == b.modality
        assert len(a.volumes) == len(b.volumes) == len(pids)
        for va, vb in zip(a.volumes, b.volumes):
            assert np.array_equal(a.image(va), b.image(vb)), (va, vb)
            assert np.array_equal(a.label(va), b.label(vb)), (va, vb)
            assert a.volume_attrs(va)["spacing"] == b.volume_attrs(vb)["spacing"]
