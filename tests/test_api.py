"""The Python API: lazy import, numpy and NIfTI inputs, and docs/python-api.md executed as written."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from fewshotkit.core.errors import FewshotkitError

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, fixed_run):
    """A folder holding runs/synthetic (as in the doc): the fixed-weight model, whose predictions are
    known (tests/fixed_model.py), so the comparisons below are never between two empty maps."""
    root = tmp_path_factory.mktemp("api")
    shutil.copytree(fixed_run(), root / "runs" / "synthetic")
    return root


def test_import_is_light_and_load_is_lazy():
    code = ("import sys, fewshotkit as fsk\n"
            "assert 'torch' not in sys.modules and 'fewshotkit.apps.api' not in sys.modules\n"
            "assert callable(fsk.load) and 'fewshotkit.apps.api' in sys.modules and 'torch' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_documented_example_runs(workdir, monkeypatch, fresh_host, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 3
    monkeypatch.chdir(workdir)
    namespace: dict = {}
    for block in blocks[1:]:  # the first block is the sketch at the top
        exec(compile(block, str(DOC), "exec"), namespace)
    out = capsys.readouterr().out
    assert "liver Dice" in out and "spleen" in out
    labels = nib.load(workdir / "labels.nii.gz")
    assert np.allclose(labels.affine, nib.load(workdir / "query.nii.gz").affine)
    assert set(np.unique(np.asarray(labels.dataobj))) <= {0, 1, 4}
    assert labels.get_data_dtype() == np.uint8, "a label map, not the query's float type"


def test_numpy_and_nifti_inputs_give_the_same_labels(workdir, tmp_path, fresh_host):
    import fewshotkit as fsk
    from fewshotkit.data.ingest.synthetic import phantom

    model = fsk.load(workdir / "runs" / "synthetic", device="cpu")
    support, mask = phantom(3, 0, 12, 96)  # one field of view and pixel size: files then need no frame change
    query, _ = phantom(3, 1, 14, 96)
    paths = {}
    for name, volume in (("s", support), ("m", mask), ("q", query)):
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(volume.transpose(2, 1, 0), np.eye(4)), str(paths[name]))
    from_arrays = model.segment(query, support, mask, classes="all", postprocess=[])
    from_files = model.segment(paths["q"], paths["s"], paths["m"], classes="all", postprocess=[])
    assert from_arrays.shape == query.shape and np.array_equal(from_arrays, from_files)
    assert np.count_nonzero(from_arrays == 1) > 1000, "the fixed model finds the liver"
    # a query file storing its voxels in another order (x and z reversed: LAI) is segmented in the
    # support's orientation and answered on its own grid
    flipped = tmp_path / "q_lai.nii.gz"
    nib.save(nib.Nifti1Image(query[::-1, :, ::-1].transpose(2, 1, 0), np.diag([-1.0, 1.0, -1.0, 1.0])), str(flipped))
    from_flipped = model.segment(flipped, paths["s"], paths["m"], classes="all", postprocess=[])
    assert np.array_equal(from_flipped, from_files[::-1, :, ::-1])
    with pytest.warns(RuntimeWarning, match="one of support and query is a file and the other an array"):
        mixed = model.segment(query, paths["s"], paths["m"], classes="all", postprocess=[])
    assert np.array_equal(mixed, from_arrays), "stored as the arrays lie: the same labels"
    binary = model.segment(query, support, mask == 4, postprocess=[])
    assert set(np.unique(binary)) <= {0, 1}
    # a query range restricts the segmented slices
    ranged = model.segment(query, support, mask, classes=[1], query_range=(3, 5), postprocess=[])
    assert not ranged[:3].any() and not ranged[6:].any() and ranged[3:6].any()
    finer = fsk.load(workdir / "runs" / "synthetic", device="cpu", overrides=["pooler.test_window=1"])
    assert finer.spec.parts["pooler"]["test_window"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        ({"query": np.zeros((4, 4))}, "3D volume"),
        ({"support_mask": np.zeros((2, 2, 2))}, "must match"),
        ({"support_mask": "mask.nii.gz"}, "both as paths or both as arrays"),
        ({"classes": "pancreas"}, "unknown class name"),
        ({"drop_absent": 2.0}, "--drop-absent"),
    ],
)
def test_bad_api_input_is_a_clear_error(workdir, fresh_host, args, message):
    import fewshotkit as fsk
    from fewshotkit.data.ingest.synthetic import phantom

    model = fsk.load(workdir / "runs" / "synthetic", device="cpu")
    support, mask = phantom(3, 0, 12, 64)
    kwargs = {"query": support, "support_image": support, "support_mask": mask, "classes": 1, **args}
    with pytest.raises(FewshotkitError, match=message):
        model.segment(**kwargs)
