"""``fewshotkit segment``: geometry kept, in-plane resampling, Dice report, one-line errors."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from fewshotkit.evaluation.options import InferenceOptions


def _write(path, array_zhw, affine=None, dtype=np.float32):
    affine = np.diag([1.4, 1.4, 5.0, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(np.ascontiguousarray(array_zhw.transpose(2, 1, 0)).astype(dtype), affine), str(path))
    return path


@pytest.fixture(scope="module")
def checkpoint(fixed_run):
    """The fixed-weight model's checkpoint: its predictions are known (tests/fixed_model.py)."""
    return fixed_run() / "checkpoints" / "last.pt"


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Two synthetic MR-like scans of different in-plane sizes (160 x 144 and 112 x 112)."""
    from fewshotkit.data.ingest.synthetic import phantom

    root = tmp_path_factory.mktemp("scans")
    out = {}
    for name, index, size in (("support", 0, 160), ("query", 1, 112)):
        image, label = phantom(5, index, 14, size)
        if name == "support":
            image, label = image[:, 8:152], label[:, 8:152]  # a non-square slice
        affine = np.array([[-1.3, 0, 0, 10], [0, -1.3, 0, 20], [0, 0, 6.0, -30 - index], [0, 0, 0, 1]])
        out[name] = _write(root / f"{name}.nii.gz", image, affine)
        out[f"{name}_label"] = _write(root / f"{name}_label.nii.gz", label, affine, np.uint8)
    return out


def test_segment_keeps_the_query_geometry(run_cli, checkpoint, scans, tmp_path):
    out = tmp_path / "pred.nii.gz"
    result = run_cli("segment", "--checkpoint", str(checkpoint), "--support", str(scans["support"]),
                     "--support-label", str(scans["support_label"]), "--class", "1", "--query", str(scans["query"]),
                     "--query-label", str(scans["query_label"]), "--device", "cpu", "-o", str(out),
                     "--overlay", str(tmp_path / "m.png"))
    assert result.exit_code == 0, result.output
    pred, query = nib.load(out), nib.load(scans["query"])
    assert np.array_equal(pred.affine, query.affine) and pred.shape == query.shape
    assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1}
    assert "Dice of class 1 against" in result.output
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_segment_dice_matches_the_written_file(checkpoint, scans, tmp_path):
    from fewshotkit.apps.segment import ScanFiles, segment_files

    files = ScanFiles(scans["support"], scans["support_label"], scans["query"], scans["query_label"])
    res = segment_files(checkpoint, files, tmp_path / "p.nii.gz", classes=2, device="cpu",
                        options=InferenceOptions(all_slices=True))
    pred = np.asarray(nib.load(res.output).dataobj) == 2
    truth = np.asarray(nib.load(scans["query_label"]).dataobj) == 2
    expected = 200.0 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert res.classes[0].dice == pytest.approx(expected)
    assert len(res.classes[0].support_slices) == 3
    finer = segment_files(checkpoint, files, tmp_path / "f.nii.gz", classes=2, device="cpu",
                          options=InferenceOptions(all_slices=True, overrides=("pooler.test_window=1",)))
    assert not np.array_equal(np.asarray(nib.load(finer.output).dataobj), np.asarray(nib.load(res.output).dataobj))
    searched = segment_files(checkpoint, ScanFiles(scans["support"], scans["support_label"], scans["query"]),
                             tmp_path / "s.nii.gz", classes=2, device="cpu",
                             options=InferenceOptions.from_values(overrides=["support_orientation=search"]))
    assert searched.support_turns in (0, 1, 2, 3) and searched.prediction.shape == res.prediction.shape


def test_estimated_query_range():
    from fewshotkit.evaluation.query_range import estimate_range

    assert estimate_range((10, 20), 41, 21) == (5, 10)
    assert estimate_range((0, 40), 41, 31) == (0, 30)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing-class", "has no voxel of class 7"),
        ("2d-query", "is a 2D image"),
        ("bad-output", "must be a .nii"),
    ],
)
def test_bad_input_is_one_line(fresh_host, checkpoint, scans, tmp_path, capsys, case, message):
    from fewshotkit.cli import main

    query, cls, output = scans["query"], "1", tmp_path / "p.nii.gz"
    if case == "missing-class":
        cls = "7"
    elif case == "2d-query":
        query = tmp_path / "flat.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros((32, 32), np.float32), np.eye(4)), str(query))
    elif case == "bad-output":
        output = tmp_path / "p.png"
    with pytest.raises(SystemExit) as exc:
        main(["segment", "--checkpoint", str(checkpoint), "--support", str(scans["support"]), "--support-label",
              str(scans["support_label"]), "--class", cls, "--query", str(query), "-o", str(output),
              "--device", "cpu"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not output.exists()


@pytest.mark.data
def test_segment_between_two_chaos_scans(run_cli, chaos_dir, checkpoint, tmp_path):
    out = tmp_path / "liver.nii.gz"
    result = run_cli("segment", "--checkpoint", str(checkpoint), "--support", str(chaos_dir / "image_1.nii.gz"),
                     "--support-label", str(chaos_dir / "label_1.nii.gz"), "--class", "1",
                     "--query", str(chaos_dir / "image_2.nii.gz"), "--query-label", str(chaos_dir / "label_2.nii.gz"),
                     "--device", "cpu", "-o", str(out))
    assert result.exit_code == 0, result.output
    query = nib.load(chaos_dir / "image_2.nii.gz")
    pred = nib.load(out)
    assert np.array_equal(pred.affine, query.affine) and pred.shape == query.shape
    assert "Dice of class 1 against" in result.output


def test_several_classes_go_into_one_label_map_with_the_query_header(run_cli, checkpoint, scans, tmp_path):
    out = tmp_path / "multi.nii.gz"
    result = run_cli("segment", "--checkpoint", str(checkpoint), "--support", str(scans["support"]),
                     "--support-label", str(scans["support_label"]), "--class", "1", "--class", "4",
                     "--query", str(scans["query"]), "--query-label", str(scans["query_label"]), "--device", "cpu",
                     "-o", str(out), "--overlay", str(tmp_path / "multi.png"), "--postprocess", "largest-component")
    assert result.exit_code == 0, result.output
    assert "one forward pass per query chunk for all classes" in result.output
    assert "Dice of class 1" in result.output and "Dice of class 4" in result.output
    pred, query = nib.load(out), nib.load(scans["query"])
    assert np.array_equal(pred.affine, query.affine) and pred.shape == query.shape
    assert pred.header.get_zooms() == query.header.get_zooms()
    assert int(pred.header["sform_code"]) == int(query.header["sform_code"])
    data = np.asarray(pred.dataobj)
    assert set(np.unique(data)) <= {0, 1, 4}
    from scipy import ndimage

    for value in (1, 4):  # --postprocess largest-component acted on each class
        assert ndimage.label(data == value, structure=np.ones((3, 3, 3)))[1] <= 1
    assert (tmp_path / "multi.png").read_bytes()[:4] == b"\x89PNG"


def test_class_all_uses_one_forward_pass_per_chunk(checkpoint, scans, tmp_path, monkeypatch, fresh_host):
    from fewshotkit.evaluation.inference import MethodPredictor
    from fewshotkit.evaluation.query_range import estimated_query_range
    from fewshotkit.apps.segment import ScanFiles, segment_files

    calls = []
    original = MethodPredictor.class_probabilities

    def counting(self, support_images, support_masks, query_images):
        calls.append(support_masks.shape[1])
        return original(self, support_images, support_masks, query_images)

    monkeypatch.setattr(MethodPredictor, "class_probabilities", counting)
    files = ScanFiles(scans["support"], scans["support_label"], scans["query"])
    res = segment_files(checkpoint, files, tmp_path / "all.nii.gz", classes="all", device="cpu")
    support_label = np.asarray(nib.load(scans["support_label"]).dataobj).transpose(2, 1, 0)
    present = [int(v) for v in np.unique(support_label) if v]
    assert [c.value for c in res.classes] == present and res.joint
    assert calls == [len(present)] * 3, "one N-way pass per query chunk"
    depth = nib.load(scans["query"]).shape[2]
    for item in res.classes:  # the same range estimate as the estimated-range protocol
        zs = np.flatnonzero((support_label == item.value).any(axis=(1, 2)))
        assert item.query_range == estimated_query_range(zs, support_label.shape[0], depth)
        outside = np.ones(depth, bool)
        outside[item.query_range[0] : item.query_range[1] + 1] = False
        assert not (res.prediction[outside] == item.value).any(), "a class keeps only its own range"

    calls.clear()
    separate = segment_files(checkpoint, files, tmp_path / "sep.nii.gz", classes=["1", "4"], device="cpu",
                             options=InferenceOptions(joint=False))
    assert not separate.joint and calls == [1] * 6, "fallback: one 1-way pass per class and chunk"


def test_methods_without_multiway_fall_back_to_one_pass_per_class():
    from fewshotkit.evaluation.scan import segment_volume

    class OneWay:
        multiway = False

        def __init__(self):
            self.calls = 0

        def probabilities(self, support_images, support_masks, query_images):
            self.calls += 1
            # "segments" whatever intensity the support mask covers, with a confidence per class
            level = float(support_images[support_masks].mean())
            return np.where(np.isclose(query_images, level), 0.6 + level / 10, 0.0).astype(np.float32)

    label = np.zeros((9, 6, 6), np.uint8)
    label[1:8, 1:3, 1:3] = 1
    label[2:6, 3:5, 3:5] = 2
    image = label.astype(np.float32)
    predictor = OneWay()
    seg = segment_volume(predictor, image, label, image, [1, 2], options=InferenceOptions(chunks=3))
    assert not seg.joint and predictor.calls == 6
    assert np.array_equal(seg.labels[1:8], label[1:8]) and set(np.unique(seg.labels)) == {0, 1, 2}
    # a support-aware post-processor gets the support's mask of each class
    from fewshotkit.evaluation.postprocess import ScanPostprocess
    from fewshotkit.interfaces.postprocessor import SupportPostprocessor

    class Spy(SupportPostprocessor):
        def __init__(self):
            self.supports = []

        def __call__(self, mask, spacing=None, support=None):
            self.supports.append(support)
            return mask

    spy = Spy()
    segment_volume(OneWay(), image, label, image, [1, 2],
                   options=InferenceOptions(chunks=3, postprocess=ScanPostprocess([("spy", spy)])))
    assert [s.sum() for s in spy.supports] == [(label == 1).sum(), (label == 2).sum()]


def test_segment_inside_the_supports_window(run_cli, checkpoint, scans, tmp_path):
    out = tmp_path / "zoomed.nii.gz"
    result = run_cli("segment", "--checkpoint", str(checkpoint), "--support", str(scans["support"]),
                     "--support-label", str(scans["support_label"]), "--class", "1", "--class", "4",
                     "--query", str(scans["query"]), "--device", "cpu", "-o", str(out), "--set", "support_zoom=0.05")
    assert result.exit_code == 0, result.output
    assert "segmented inside the support's box grown by 0.05" in result.output
    pred, query = nib.load(out), nib.load(scans["query"])
    assert np.array_equal(pred.affine, query.affine) and pred.shape == query.shape
    assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1, 4}


def test_segment_with_a_foreground_threshold_keeps_fewer_voxels(run_cli, checkpoint, scans, tmp_path):
    voxels = {}
    for threshold in (0.5, 0.9):
        out = tmp_path / f"t{threshold}.nii.gz"
        result = run_cli("segment", "--checkpoint", str(checkpoint), "--support", str(scans["support"]),
                         "--support-label", str(scans["support_label"]), "--class", "1", "--query",
                         str(scans["query"]), "--device", "cpu", "-o", str(out), "--set", f"fg_threshold={threshold}")
        assert result.exit_code == 0, result.output
        assert ("foreground where its softmax exceeds 0.9 (fg_threshold)" in result.output) == (threshold == 0.9)
        voxels[threshold] = int((np.asarray(nib.load(out).dataobj) == 1).sum())
    assert voxels[0.9] < voxels[0.5]


def _reoriented(path, codes, out):
    """The scan at ``path`` with its voxels stored in the orientation ``codes`` (same anatomy)."""
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    image = nib.load(path)
    moved = image.as_reoriented(ornt_transform(io_orientation(image.affine), axcodes2ornt(tuple(codes))))
    nib.save(moved, str(out))
    return out


def test_a_query_stored_in_another_orientation_gets_the_same_segmentation(checkpoint, scans, tmp_path):
    from fewshotkit.apps.segment import ScanFiles, segment_files
    from fewshotkit.apps.segment_inputs import model_orientation
    from fewshotkit.method.checkpoint import read_checkpoint

    meta = read_checkpoint(checkpoint)
    assert meta["run"]["orientation"] is None and model_orientation(meta) is None  # phantoms: made-up affines
    plain = segment_files(checkpoint, ScanFiles(scans["support"], scans["support_label"], scans["query"],
                                                scans["query_label"]), tmp_path / "a.nii.gz", classes=1, device="cpu")
    query = _reoriented(scans["query"], "RAI", tmp_path / "q.nii.gz")  # x, y and z reversed
    label = _reoriented(scans["query_label"], "RAI", tmp_path / "ql.nii.gz")
    moved = segment_files(checkpoint, ScanFiles(scans["support"], scans["support_label"], query, label),
                          tmp_path / "b.nii.gz", classes=1, device="cpu")
    assert plain.orientation == ("LPS", "LPS", "LPS") and moved.orientation == ("LPS", "RAI", "LPS")  # the support's
    written = nib.load(moved.output)
    assert np.array_equal(written.affine, nib.load(query).affine)  # on the query's own grid
    back = _reoriented(moved.output, "LPS", tmp_path / "back.nii.gz")
    assert np.array_equal(np.asarray(nib.load(back).dataobj), np.asarray(nib.load(plain.output).dataobj))
    assert moved.classes[0].dice == plain.classes[0].dice > 50  # the fixed model finds the dark liver
    depth = plain.prediction.shape[0]
    lo, hi = plain.classes[0].query_range
    assert moved.classes[0].query_range == (depth - 1 - hi, depth - 1 - lo)  # the query's own slice numbers
    # a given range is read in the query's own numbers too
    ranged = segment_files(checkpoint, ScanFiles(scans["support"], scans["support_label"], query),
                           tmp_path / "c.nii.gz", classes=1, device="cpu",
                           options=InferenceOptions(query_range=(depth - 1 - hi, depth - 1 - lo)))
    assert np.array_equal(ranged.prediction, moved.prediction)


def test_a_model_that_records_its_orientation_gets_the_support_turned_to_it(checkpoint, scans, tmp_path):
    """Support and query (LPS) are brought to the orientation the model's run records (RAS): the same
    segmentation as support and query stored as RAS by hand, given to a model that records none."""
    import torch

    from fewshotkit.apps.segment import ScanFiles, segment_files
    from fewshotkit.method.checkpoint import save_checkpoint

    payload = torch.load(checkpoint, weights_only=True)
    assert payload["run"]["orientation"] is None
    payload["run"]["orientation"] = "RAS"
    ras_model = save_checkpoint(tmp_path / "ras.pt", payload)
    turned = segment_files(ras_model, ScanFiles(scans["support"], scans["support_label"], scans["query"]),
                           tmp_path / "t.nii.gz", classes=1, device="cpu")
    assert turned.orientation == ("LPS", "LPS", "RAS")  # support, query, the frame segmented in
    by_hand = segment_files(checkpoint, ScanFiles(_reoriented(scans["support"], "RAS", tmp_path / "s.nii.gz"),
                                                  _reoriented(scans["support_label"], "RAS", tmp_path / "sl.nii.gz"),
                                                  _reoriented(scans["query"], "RAS", tmp_path / "q.nii.gz")),
                            tmp_path / "h.nii.gz", classes=1, device="cpu")
    assert by_hand.orientation == ("RAS", "RAS", "RAS")
    back = _reoriented(by_hand.output, "LPS", tmp_path / "back.nii.gz")
    assert np.array_equal(np.asarray(nib.load(back).dataobj), np.asarray(nib.load(turned.output).dataobj))
    as_stored = segment_files(checkpoint, ScanFiles(scans["support"], scans["support_label"], scans["query"]),
                              tmp_path / "a.nii.gz", classes=1, device="cpu")
    assert not np.array_equal(as_stored.prediction, turned.prediction), "the model saw turned slices"


def test_a_query_sliced_along_another_axis_refuses_a_query_range(fresh_host, checkpoint, scans, tmp_path, capsys):
    from fewshotkit.cli import main

    query = _reoriented(scans["query"], "SLP", tmp_path / "q.nii.gz")  # its slices run along x
    with pytest.raises(SystemExit) as exit_info:
        main(["segment", "--checkpoint", str(checkpoint), "--support", str(scans["support"]), "--support-label",
              str(scans["support_label"]), "--class", "1", "--query", str(query), "--query-range", "2:5",
              "--device", "cpu", "-o", str(tmp_path / "p.nii.gz")])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--query-range" in err[0] and "SLP" in err[0], err


def test_a_query_with_a_wider_field_of_view_is_segmented_at_the_support_scale(run_cli, checkpoint, scans, tmp_path):
    image = nib.load(scans["query"])
    wider = np.pad(np.asarray(image.dataobj), ((40, 40), (40, 40), (0, 0)))  # 40 more 1.3 mm pixels per side
    query = tmp_path / "wide.nii.gz"
    nib.save(nib.Nifti1Image(wider, image.affine), str(query))
    out = tmp_path / "p.nii.gz"
    result = run_cli("segment", "--checkpoint", str(checkpoint), "--support", str(scans["support"]),
                     "--support-label", str(scans["support_label"]), "--class", "1", "--query", str(query),
                     "--device", "cpu", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "support padded to 192 x 192 pixels (one field of view)" in " ".join(result.output.split())
    written = nib.load(out)
    assert written.shape == wider.shape and np.array_equal(written.affine, image.affine)


def test_a_voxel_two_classes_claim_goes_to_the_more_probable_and_the_earlier_on_a_tie():
    from fewshotkit.evaluation.scan import _Labels

    labels = _Labels((1, 1, 3), [2, 300])
    labels.add(np.array([[[True, True, True]]]), np.array([[[0.6, 0.9, 0.7]]], np.float32), 2)
    labels.add(np.array([[[True, True, False]]]), np.array([[[0.8, 0.7, 0.99]]], np.float32), 300)
    assert labels.codes.dtype == np.uint16 and labels.codes.tolist() == [[[300, 2, 2]]]
    tie = _Labels((1, 1, 1), [1, 2])
    tie.add(np.ones((1, 1, 1), bool), np.full((1, 1, 1), 0.5, np.float32), 1)
    tie.add(np.ones((1, 1, 1), bool), np.full((1, 1, 1), 0.5, np.float32), 2)
    assert tie.codes.item() == 1
