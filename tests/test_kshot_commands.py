"""``--shots`` through eval, segment, bench and the Python API: the model is given k support slices
per chunk (recorded where the predictor hands each episode to the method), and a support with
fewer class slices than shots is a one-line error."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from fewshotkit.evaluation.inference import MethodPredictor
from fewshotkit.evaluation.protocol import select_support


@pytest.fixture
def episodes(monkeypatch):
    """Every episode's support images (S, H, W), as the predictor gives them to the method."""
    seen: list[np.ndarray] = []
    softmax = MethodPredictor._softmax

    def record(self, support_images, support_masks, query_images):
        seen.append(np.array(support_images))
        return softmax(self, support_images, support_masks, query_images)

    monkeypatch.setattr(MethodPredictor, "_softmax", record)
    return seen


def test_eval_gives_each_chunk_its_k_support_slices(run_cli, fixed_run, synthetic_store, episodes, tmp_path):
    from fewshotkit.data.episodes.folds import get_fold
    from fewshotkit.data.store.reader import SliceStore

    out = tmp_path / "r.json"
    result = run_cli("eval", str(fixed_run()), "--store", str(synthetic_store), "--fold", "0", "--class", "liver",
                     "--shots", "2", "--device", "cpu", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "2-shot" in result.output
    fold = json.loads(out.read_text())["folds"][0]
    with SliceStore(synthetic_store) as store:
        support = get_fold(store, 0).support
        image, label = store.image(support), store.label(support)
        zs = np.flatnonzero((label == store.class_value("liver")).any(axis=(1, 2)))
    chosen = select_support(zs, 3, 2)
    assert fold["support_slices"]["liver"] == chosen and all(len(z) == 2 for z in chosen)
    expected = [image[z] for z in chosen]
    assert episodes and all(any(np.array_equal(seen, want) for want in expected) for seen in episodes)
    assert all(any(np.array_equal(seen, want) for seen in episodes) for want in expected), "every chunk's pair"


def test_eval_with_more_shots_than_support_slices_is_one_line(run_cli, fixed_run, synthetic_store):
    result = run_cli("eval", str(fixed_run()), "--store", str(synthetic_store), "--fold", "0", "--class", "liver",
                     "--shots", "40", "--device", "cpu")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "40-shot needs at least 40" in lines[0] and "Traceback" not in result.output


def _scan(tmp_path, name, array, dtype=np.float32):
    path = tmp_path / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(array.transpose(2, 1, 0)).astype(dtype), np.eye(4)), str(path))
    return path


def test_segment_and_the_api_use_k_support_slices(fixed_run, episodes, tmp_path, fresh_host):
    import fewshotkit as fsk
    from fewshotkit.apps.segment import ScanFiles, segment_files
    from fewshotkit.evaluation.options import InferenceOptions
    from fewshotkit.data.ingest.synthetic import phantom

    support, mask = phantom(3, 0, 12, 96)
    query, _ = phantom(3, 1, 14, 96)
    paths = {n: _scan(tmp_path, n, a) for n, a in (("s", support), ("q", query))}
    paths["m"] = _scan(tmp_path, "m", mask, np.uint8)
    result = segment_files(fixed_run(), ScanFiles(paths["s"], paths["m"], paths["q"]), tmp_path / "p.nii.gz", classes=1,
                           options=InferenceOptions(shots=3), device="cpu")
    assert [len(z) for z in result.classes[0].support_slices] == [3, 3, 3]
    assert episodes and {len(e) for e in episodes} == {3}
    episodes.clear()
    labels = fsk.load(fixed_run(), device="cpu").segment(query, support, mask, classes=1, shots=2, postprocess=[])
    assert episodes and {len(e) for e in episodes} == {2} and labels.any()
    assert all(not np.array_equal(e[0], e[1]) for e in episodes), "two different slices, not one twice"


def test_segment_with_more_shots_than_support_slices_is_one_line(run_cli, fixed_run, tmp_path):
    from fewshotkit.data.ingest.synthetic import phantom

    support, mask = phantom(3, 0, 12, 64)
    paths = {n: _scan(tmp_path, n, a) for n, a in (("s", support), ("q", support))}
    paths["m"] = _scan(tmp_path, "m", mask, np.uint8)
    result = run_cli("segment", "--checkpoint", str(fixed_run()), "--support", str(paths["s"]), "--support-label",
                     str(paths["m"]), "--class", "1", "--query", str(paths["q"]), "--shots", "12", "--device", "cpu",
                     "-o", str(tmp_path / "p.nii.gz"))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--shots 12 needs at least 12" in lines[0], result.output
    assert not (tmp_path / "p.nii.gz").exists()


@pytest.mark.slow
def test_bench_shots_reach_the_model_and_the_table(run_cli, synthetic_store, episodes, tmp_path):
    out = tmp_path / "bench"
    result = run_cli("bench", "--store", str(synthetic_store), "--method", "alpnet-init", "--recipe", "cpu",
                     "--device", "cpu", "--fold", "0", "--shots", "2", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert episodes and {len(e) for e in episodes} == {2}
    assert "2-shot" in (out / "syn_comparison.md").read_text()
