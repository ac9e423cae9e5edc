"""``training.ema``: the weight average's arithmetic, its checkpoint entry, exact resume, and that
inference loads the averaged weights."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.training.config import TrainingConfig
from fewshotkit.method.checkpoint import EMA_KEY, HOOKS, averaged_weights
from fewshotkit.training.ema import WeightAverage

from conftest import pseudolabelled_store

TINY = ["image_size=64", "backbone.width=8", "backbone.out_channels=32", "backbone.output_stride=8",
        "training.log_every=2", "training.checkpoint_every=2", "training.batch_size=1", "training.ema=0.5",
        "training.optimizer=sgd", "training.schedule=step", "training.warmup_steps=0", "training.lr=0.01"]


def _with_average(payload: dict) -> dict:
    """A checkpoint with the weight average (the EMA hook's state) beside the raw weights."""
    return {**payload, EMA_KEY: payload[HOOKS][EMA_KEY]}


def test_config_checks_the_decay_and_leaves_it_out_when_off():
    assert "ema" not in TrainingConfig.from_dict({}).to_dict()
    assert TrainingConfig.from_dict({"ema": 0.999}).to_dict()["ema"] == 0.999
    for bad in (1.0, -0.1):
        with pytest.raises(FewshotkitError, match=r"spec.training.ema must be a decay in \[0, 1\)"):
            TrainingConfig.from_dict({"ema": bad})


def test_the_average_starts_at_the_weights_then_decays():
    module = torch.nn.Linear(1, 1, bias=False)
    trainer = SimpleNamespace(method=module, device=torch.device("cpu"))
    hook = WeightAverage(0.9)
    hook.trainer = trainer  # type: ignore[assignment]
    hook.before_train()
    assert trainer.inference_module is not module
    for value in (2.0, 12.0):
        with torch.no_grad():
            module.weight.fill_(value)
        hook.after_step()
    # first update copies 2.0; then 0.9 * 2 + 0.1 * 12
    assert trainer.inference_module.weight.item() == pytest.approx(3.0)
    assert module.weight.item() == 12.0


def test_checkpoints_keep_the_average_resume_exactly_and_inference_uses_it(tmp_path, fresh_host):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training import train
    from fewshotkit.method.checkpoint import load_method

    store = pseudolabelled_store(tmp_path / "syn.h5", min_size=100, volumes=6, seed=0, slices=12, size=64)
    spec = apply_overrides(preset_spec("ssl-alpnet-cpu"), TINY)
    straight = train(spec, store, tmp_path / "a", steps=6, device="cpu", seed=1, show_progress=False)
    train(spec, store, tmp_path / "b", steps=3, device="cpu", seed=1, show_progress=False)
    resumed = train(None, None, tmp_path / "b", resume=True, steps=6, device="cpu", show_progress=False)
    a, b = (_with_average(torch.load(p, weights_only=True)) for p in (straight, resumed))
    assert a[EMA_KEY]["n_averaged"].item() == 6
    for key, value in a[EMA_KEY].items():
        assert torch.equal(value, b[EMA_KEY][key]), key
    average, raw = averaged_weights(a[EMA_KEY]), a["model"]
    assert any(not torch.equal(average[k], raw[k]) for k in raw), "the average lags the weights"
    loaded = load_method(straight).method.state_dict()
    assert all(torch.equal(loaded[k], average[k]) for k in average)


def test_a_version_1_checkpoint_keeps_its_average_for_inference_and_resume(tmp_path, fresh_host):
    """Version 1 checkpoints held the average at the top level ("ema"), without "hooks": inference
    still predicts with it and a resume still continues it exactly."""
    from fewshotkit.method.checkpoint import load_method
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training import train

    store = pseudolabelled_store(tmp_path / "syn.h5", min_size=100, volumes=6, seed=0, slices=12, size=64)
    spec = apply_overrides(preset_spec("ssl-alpnet-cpu"), TINY)
    straight = train(spec, store, tmp_path / "a", steps=4, device="cpu", seed=1, show_progress=False)
    last = train(spec, store, tmp_path / "b", steps=2, device="cpu", seed=1, show_progress=False)
    payload = torch.load(last, weights_only=True)
    payload.update(version=1, **{EMA_KEY: payload.pop(HOOKS)[EMA_KEY]})
    payload.pop("state_sha256")  # version 1 had no digest of the training state
    torch.save(payload, last)

    average = averaged_weights(payload[EMA_KEY])
    loaded = load_method(last).method.state_dict()
    assert all(torch.equal(loaded[k], average[k]) for k in average)
    resumed = train(None, None, tmp_path / "b", resume=True, steps=4, device="cpu", show_progress=False)
    a, b = (torch.load(p, weights_only=True)[HOOKS][EMA_KEY] for p in (straight, resumed))
    assert a["n_averaged"].item() == 4 and all(torch.equal(a[k], b[k]) for k in a)
