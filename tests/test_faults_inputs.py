"""Inputs that gave a silently meaningless answer or an unclear error: each now ends in a one-line
error, a warning, or a right answer. One test per fault, reproducing the command that found it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from fewshotkit.core.errors import FewshotkitError

ENV = {"OMP_NUM_THREADS": "1", "COLUMNS": "80", "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8",
       "PYTHONPATH": ":".join(p for p in sys.path if p)}


def one_line(exc: BaseException, *needles: str) -> str:
    text = str(exc)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


def _nifti(path: Path, array_zhw: np.ndarray, affine=None, dtype=np.float32) -> Path:
    affine = np.diag([2.0, 2.0, 5.0, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(np.ascontiguousarray(array_zhw.transpose(2, 1, 0)).astype(dtype), affine), str(path))
    return path


@pytest.fixture(scope="module")
def arrays():
    from fewshotkit.data.ingest.synthetic import phantom

    support, mask = phantom(5, 0, 12, 64)
    query, _ = phantom(5, 1, 12, 64)
    return query, support, mask


@pytest.fixture(scope="module")
def model(fixed_run):
    import fewshotkit as fsk

    return fsk.load(fixed_run(), device="cpu")


@pytest.fixture(scope="module")
def scans(tmp_path_factory, arrays) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    query, support, mask = arrays
    return {"support": _nifti(root / "support.nii.gz", support), "query": _nifti(root / "query.nii.gz", query),
            "support_label": _nifti(root / "support_label.nii.gz", mask, dtype=np.uint8)}


# 3: impossible shots through the Python API -------------------------------------------------------
@pytest.mark.parametrize("shots", [0, -1, -5])
def test_3_api_refuses_impossible_shots(model, arrays, shots):
    query, support, mask = arrays
    with pytest.raises(FewshotkitError) as caught:
        model.segment(query, support, mask, classes="liver", shots=shots)
    one_line(caught.value, "shots (--shots) must be a whole number >= 1", f"got {shots}")


# 9: empty or constant query or support; an all-zero scan ingested ----------------------------------
def test_9_an_all_zero_query_or_support_is_flagged(model, arrays):
    query, support, mask = arrays
    with pytest.warns(RuntimeWarning, match=r"query 'query \(array\)' is constant \(every voxel is 0\)"):
        model.segment(np.zeros_like(query), support, mask, classes="liver")
    with pytest.warns(RuntimeWarning, match=r"support 'support_image \(array\)' is constant"):
        model.segment(query, np.zeros_like(support), mask, classes="liver")


def test_9_ingest_nifti_of_an_all_zero_scan_warns(tmp_path, arrays):
    from fewshotkit.data.ingest.nifti import ingest_nifti

    _, support, mask = arrays
    src = tmp_path / "src"
    src.mkdir()
    for i, image in enumerate((support, support * 0.5 + 3, np.zeros_like(support))):
        _nifti(src / f"image_{i}.nii.gz", image)
        _nifti(src / f"label_{i}.nii.gz", mask, dtype=np.uint8)
    labels = {1: "liver", 2: "right-kidney", 3: "left-kidney", 4: "spleen"}
    with pytest.warns(RuntimeWarning, match=r"image_2.nii.gz' is constant \(every voxel is 0\)"):
        ingest_nifti(src, tmp_path / "s.h5", labels=labels, quiet=True)


# 10: a label whose affine differs from its image's ------------------------------------------------
def test_10_a_label_on_another_grid_is_refused_by_segment_and_ingest(run_cli, fixed_run, scans, tmp_path, arrays):
    from fewshotkit.data.ingest.nifti import ingest_nifti

    _, support, mask = arrays
    moved = _nifti(tmp_path / "lab3mm.nii.gz", mask, np.diag([3.0, 3.0, 5.0, 1.0]), np.uint8)
    result = run_cli("segment", "--checkpoint", str(fixed_run()), "--support", str(scans["support"]),
                     "--support-label", str(moved), "--query", str(scans["query"]), "--class", "1",
                     "--device", "cpu", "-o", str(tmp_path / "p.nii.gz"))
    assert result.exit_code == 1 and "lies on another grid than its image" in result.output, result.output
    src = tmp_path / "src"
    src.mkdir()
    _nifti(src / "image_0.nii.gz", support)
    shutil.copy(moved, src / "label_0.nii.gz")
    with pytest.raises(FewshotkitError) as caught:
        ingest_nifti(src, tmp_path / "s.h5", labels={1: "liver"}, quiet=True)
    one_line(caught.value, "another grid")


# 11: eval of an unfinished run -------------------------------------------------------------------
def test_11_eval_of_an_unfinished_run_warns(trained_run, synthetic_store, tmp_path):
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_checkpoint

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "status": "running"}))
    with pytest.warns(RuntimeWarning, match="its run did not finish; run.json says 'running'"):
        evaluate_checkpoint(run, synthetic_store, folds=[0], classes=["liver"], run=EvalRun(device="cpu"))


# 13: a damaged run.json, a spec.toml of another method ---------------------------------------------
def test_13_resume_of_a_truncated_run_json_names_the_file(run_cli, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    text = (run / "run.json").read_text()
    (run / "run.json").write_text(text[: len(text) // 2])
    result = run_cli("train", "--resume", str(run), "--device", "cpu")
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "unexpected" not in result.output, result.output
    assert "run.json' is not valid JSON" in errors[0]


def test_13_resume_with_a_spec_of_another_method_names_the_file(run_cli, trained_run, tmp_path):
    from fewshotkit.method.spec import dump_spec, preset_spec

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "spec.toml").write_text(dump_spec(preset_spec("ssl-adnet-cpu")))  # a classifier with a weight of its own
    result = run_cli("train", "--resume", str(run), "--device", "cpu")
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "unexpected" not in result.output, result.output
    assert "spec.toml'" in errors[0] and "restore" in errors[0], "one line naming the file and what to do"


# 14: a query without orientation or spacing -------------------------------------------------------
def test_14_a_query_without_qform_sform_or_pixdim_warns_what_was_assumed(model, scans, tmp_path, arrays):
    query, _, _ = arrays
    img = nib.Nifti1Image(np.ascontiguousarray(query.transpose(2, 1, 0)), None)
    img.header.set_qform(None, code=0)
    img.header.set_sform(None, code=0)
    img.header["pixdim"][1:4] = 0
    path = tmp_path / "bare.nii.gz"
    nib.save(img, str(path))
    with pytest.warns(RuntimeWarning, match=r"records no orientation .* orientation and spacing are unknown; taken "
                                            r"as LAS \(nibabel's default\), voxel size unknown \(pixdim 0\)"):
        model.segment(path, scans["support"], scans["support_label"], classes=1)


# 15: a label map given as the query ----------------------------------------------------------------
def test_15_a_label_map_as_the_query_warns(model, arrays, scans):
    _, support, mask = arrays
    with pytest.warns(RuntimeWarning, match=r"looks like a label map \(5 whole values: 0, 1, 2, 3, 4\)"):
        model.segment(mask, support, mask, classes="liver")
    with pytest.warns(RuntimeWarning, match="looks like a label map"):
        model.segment(scans["support_label"], scans["support"], scans["support_label"], classes=1)


# 16: a declared class that no label map holds -------------------------------------------------------
def test_16_ingest_nifti_warns_of_a_class_never_present(run_cli, tmp_path, arrays):
    _, support, mask = arrays
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        _nifti(src / f"image_{i}.nii.gz", support + i)
        _nifti(src / f"label_{i}.nii.gz", mask, dtype=np.uint8)
    with pytest.warns(RuntimeWarning, match="class 7=ghost is in no label map") as caught:
        result = run_cli("ingest", "nifti", str(src), "-o", str(tmp_path / "s.h5"), "--labels",
                         "1=liver,2=right-kidney,3=left-kidney,4=spleen,7=ghost")
    assert result.exit_code == 0, result.output
    assert not [w for w in caught if "class 1=" in str(w.message)], "only the absent class is named"


# 18: eval --n-folds: the help and the check agree --------------------------------------------------
def test_18_eval_n_folds_help_says_what_the_command_checks(run_cli, trained_run, synthetic_store):
    assert "x>=2" in run_cli("eval", "--help").output
    result = run_cli("eval", str(trained_run), "--store", str(synthetic_store), "--n-folds", "1")
    assert result.exit_code == 2 and "1 is not in the range x>=2" in result.output


# 19: the API's inputs --------------------------------------------------------------------------------
@pytest.mark.parametrize("change, words", [
    ({"query": np.zeros((0, 64, 64))}, "the volume has shape (0, 64, 64), with no voxel"),
    ({"query": np.full((12, 64, 64), "a")}, "must hold real numbers"),
    ({"query": np.ones((12, 64, 64), complex)}, "got dtype complex128"),
    ({"support_mask": np.full((12, 64, 64), "x")}, "the mask must hold real numbers"),
    ({"shots": 2.5}, "shots (--shots) must be a whole number >= 1, got 2.5"),
    ({"batch_size": 0}, "batch_size (--batch-size) must be a whole number >= 1, got 0"),
    ({"batch_size": -3}, "got -3"),
    ({"query_range": (10, 2)}, "the first slice 10 is after the last 2"),
    ({"query_range": (2, 40)}, "outside the query's slices 0..11"),
    ({"shot": 2}, "Did you mean 'shots'"),
])
def test_19_api_inputs_are_checked_in_one_line(model, arrays, change, words):
    query, support, mask = arrays
    kwargs = {"query": query, "support_image": support, "support_mask": mask, "classes": "liver", **change}
    with pytest.raises(FewshotkitError) as caught:
        model.segment(**kwargs)
    one_line(caught.value, words)


def test_19_load_checks_the_batch_size(fixed_run):
    import fewshotkit as fsk

    with pytest.raises(FewshotkitError, match=r"batch_size \(--batch-size\) must be a whole number >= 1, got 0"):
        fsk.load(fixed_run(), device="cpu", batch_size=0)


# 20: a query without slices ---------------------------------------------------------------------------
def test_20_a_query_of_no_slices_names_its_shape(run_cli, fixed_run, scans, tmp_path):
    empty = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((64, 64, 0), np.float32), np.eye(4)), str(empty))
    result = run_cli("segment", "--checkpoint", str(fixed_run()), "--support", str(scans["support"]),
                     "--support-label", str(scans["support_label"]), "--query", str(empty), "--class", "1",
                     "--device", "cpu", "-o", str(tmp_path / "p.nii.gz"))
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert "voxel shape (64, 64, 0) (x, y, z), with no voxel along an axis" in errors[0]


# 21: pretrained weights that are a pickle ------------------------------------------------------------
class _Payload:
    def __reduce__(self):
        return (print, ("this ran",))


def test_21_a_pickled_weights_file_is_one_line_without_unsafe_advice(tmp_path):
    import torch

    pytest.importorskip("timm", reason="the timm backbones plugin reads backbone.weights")
    from fewshotkit_timm.weights import read_state_dict

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": _Payload()}, evil)
    with pytest.raises(FewshotkitError) as caught:
        read_state_dict(evil)
    text = one_line(caught.value, "backbone.weights: cannot read", "evil.pth", "never pickled code")
    assert "weights_only" not in text and "succeed" not in text


# 22: identifiers never cut in a listing that is not a wide terminal ----------------------------------
@pytest.mark.parametrize("args, names", [
    (("components",), ("cosine-softmax", "felzenszwalb", "largest-component")),
    (("compose", "--list-presets"), ("ssl-alpnet-cpu-bf16", "ssl-regional-cpu", "deeplab-resnet101")),
])
def test_22_listings_piped_keep_every_identifier_whole(args, names):
    out = subprocess.run([sys.executable, "-m", "fewshotkit", *args], capture_output=True, text=True, env=ENV,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "…" not in out.stdout and "..." not in out.stdout
    for name in names:
        assert any(name in line.split("\t") for line in out.stdout.splitlines()), name
