"""benchmarks/studies/swap_encoder.py: one run's encoder under another run's head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import benchmark_script


def _module():
    return benchmark_script("studies/swap_encoder.py")


def _trained(preset: str, store: Path, out: Path) -> Path:
    """``preset`` with the fixed model's backbone table, one training step."""
    from fixed_model import OVERRIDES

    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training.loop import train

    train(apply_overrides(preset_spec(preset), OVERRIDES), store, out, steps=1, device="cpu", seed=0,
          show_progress=False)
    return out


def _scores(checkpoint: Path, store: Path) -> dict:
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_checkpoint

    document, _ = evaluate_checkpoint(checkpoint, store, folds=[0], classes=["liver", "spleen"], run=EvalRun(device="cpu"))
    return document["folds"][0]["per_scan"]


def test_the_fixed_encoder_under_a_trained_head_scores_as_the_fixed_model(synthetic_store, fixed_run, tmp_path):
    """SSL-ALPNet's head has no weights: the fixed encoder under another SSL-ALPNet run's head is
    the fixed model, so its scores are the fixed model's to the last pixel."""
    swap = _module()
    other = _trained("ssl-alpnet-cpu", synthetic_store, tmp_path / "alpnet")
    out = tmp_path / "swapped.pt"
    assert swap.main([str(fixed_run()), str(other), "-o", str(out)]) == 0
    assert _scores(out, synthetic_store) == _scores(fixed_run(), synthetic_store)
    assert _scores(other, synthetic_store) != _scores(fixed_run(), synthetic_store)  # the swap is what matched


def test_a_threshold_head_keeps_its_threshold_and_takes_the_encoder(synthetic_store, fixed_run, tmp_path):
    from fewshotkit.method.checkpoint import load_method

    swap = _module()
    adnet = _trained("ssl-adnet-cpu", synthetic_store, tmp_path / "adnet")
    out = tmp_path / "swapped.pt"
    assert swap.main([str(fixed_run()), str(adnet), "-o", str(out)]) == 0
    result = load_method(out).method.state_dict()
    encoder, head = load_method(fixed_run()).method.state_dict(), load_method(adnet).method.state_dict()
    assert result.keys() == head.keys()
    for key, value in result.items():
        expected = encoder[key] if key.startswith("backbone.") else head[key]
        assert torch.equal(value, expected), key
    assert any(not key.startswith("backbone.") for key in result)  # the learned threshold came along


def test_runs_with_different_backbones_are_a_one_line_error(fixed_run, trained_run, tmp_path, capsys):
    swap = _module()
    assert swap.main([str(trained_run), str(fixed_run()), "-o", str(tmp_path / "x.pt")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the backbones differ") and "\n" not in err
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("key", ["fold", "val_scans"])
def test_runs_of_different_folds_are_refused(key, monkeypatch):
    swap = _module()
    a = {"spec_toml": "", "run": {key: 0}, "path": "a"}
    b = {"spec_toml": "", "run": {key: 1}, "path": "b"}
    monkeypatch.setattr(swap, "backbone_table", lambda payload: ({}, 128))  # only the run keys differ
    with pytest.raises(ValueError, match=f"run key '{key}' differs"):
        swap.check_compatible(a, b)
