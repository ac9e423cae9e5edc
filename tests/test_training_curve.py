"""The training loop's hooks and schedules: the Dice-vs-time curve, AdamW/cosine/warm-up, and the
curves command. On a tiny synthetic store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.training.config import TrainingConfig
from fewshotkit.training.optim import build_scheduler, lr_factor

from conftest import pseudolabelled_store
from test_training import tiny_spec


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return pseudolabelled_store(tmp_path_factory.mktemp("curve") / "syn.h5", min_size=100,
                                volumes=6, seed=0, slices=12, size=64)


def test_eval_every_writes_a_curve_and_excludes_evaluation_time(store, tmp_path, run_cli):
    from fewshotkit.training.loop import train

    out = tmp_path / "run"
    train(tiny_spec("training.eval_every=4"), store, out, steps=8, device="cpu", seed=0, show_progress=False)
    records = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 4, 8]
    run = json.loads((out / "run.json").read_text())
    assert records[-1]["train_s"] == pytest.approx(run["train_seconds"], abs=0.01)
    assert records[0]["train_s"] == 0.0 and records[-1]["train_s"] > records[1]["train_s"] > 0
    for record in records:
        for protocol in ("roy", "full-volume"):
            assert 0.0 <= record[protocol]["dice"] <= 100.0
            assert record[protocol]["per_class"] and set(record[protocol]["per_class"]) <= {
                "liver", "right kidney", "left kidney", "spleen"}
    assert (out / "curve.png").stat().st_size > 0 and "inference" not in records[0]

    result = run_cli("curves", str(out), str(out), "--label", "a", "--label", "b", "-o", str(tmp_path / "c.png"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.png").stat().st_size > 0 and "last step 8" in result.output


@pytest.mark.parametrize("clock, title", [("cpu", "training time (CPU min, evaluation excluded)"),
                                          ("wall", "training time (min, evaluation excluded)")])
def test_the_monitored_panel_shares_the_dice_panels_clock(clock, title, monkeypatch, tmp_path):
    from matplotlib.figure import Figure

    from fewshotkit.training import curves

    records = [{"step": s, "train_min": 2.0 * s, "train_cpu_min": float(s), "roy": {"dice": 10.0 * s},
                "monitored": {"threshold": -10.0 - s}} for s in range(3)]
    figures: list = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: figures.append(self))
    curves.plot_dice_curves([("ADNet", records)], tmp_path / "c.png", protocols=("roy",), clock=clock)
    dice, _, monitored = figures[0].axes
    assert dice.get_xlabel() == monitored.get_xlabel() == title
    times = {"cpu": [0.0, 1.0, 2.0], "wall": [0.0, 2.0, 4.0]}[clock]
    assert list(monitored.lines[0].get_xdata()) == list(dice.lines[0].get_xdata()) == times


def test_curves_are_labelled_by_method(tmp_path):
    from fewshotkit.cli.curves import default_labels
    from fewshotkit.method.spec import preset_spec, save_spec

    runs = {name: tmp_path / name for name in ("a", "b", "c", "d")}
    for name, preset in (("a", "ssl-adnet-cpu"), ("b", "ssl-gmrd-cpu"), ("c", "ssl-gmrd-cpu")):
        runs[name].mkdir()
        save_spec(preset_spec(preset), runs[name] / "spec.toml")
    runs["d"].mkdir()  # no spec: the folder's name
    assert default_labels(list(runs.values())) == ["ADNet (CPU recipe)", "GMRD (CPU recipe) (b)",
                                                   "GMRD (CPU recipe) (c)", "d"]


@pytest.mark.slow
def test_curve_applies_the_specs_inference_options_as_eval_does(store, tmp_path):
    """Zoom, orientation search, self-support and post-processing in the spec: the last curve point is the Dice
    that ``fewshotkit eval`` of the finished run reports (the curve tracks the model as evaluated)."""
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_checkpoint
    from fewshotkit.evaluation.options import InferenceOptions
    from fewshotkit.training.loop import train

    out = tmp_path / "run"
    train(tiny_spec("training.eval_every=4", "support_zoom=0.1", "support_orientation=search",
                    "options.self_support=0.7", "postprocess=largest-component"),
          store, out, steps=4, device="cpu", seed=0, show_progress=False)
    last = json.loads((out / "curve.jsonl").read_text().splitlines()[-1])
    assert last["inference"] == {"support_zoom": 0.1, "support_orientation": "search", "self_support": 0.7,
                                 "postprocess": ["largest-component"]}
    for protocol in ("roy", "full-volume"):
        document, _ = evaluate_checkpoint(out, store, protocol=protocol, run=EvalRun(device="cpu"))
        assert last[protocol]["dice"] == pytest.approx(document["summary"]["dice"]["mean"]["mean"], abs=1e-3)
    as_is, _ = evaluate_checkpoint(out, store, protocol="roy", run=EvalRun(device="cpu"), options=InferenceOptions.from_values(
        postprocess="none", overrides=["support_zoom=null", "support_orientation=as-is"]))
    assert as_is["summary"]["dice"]["mean"]["mean"] != pytest.approx(last["roy"]["dice"], abs=1e-3), "the options must change the score"


def test_curve_resumes_without_duplicate_points(store, tmp_path):
    from fewshotkit.training.loop import train

    out = tmp_path / "run"
    train(tiny_spec("training.eval_every=4"), store, out, steps=4, device="cpu", seed=0, show_progress=False)
    train(None, None, out, resume=True, steps=8, device="cpu")
    steps = [json.loads(line)["step"] for line in (out / "curve.jsonl").read_text().splitlines()]
    assert steps == [0, 4, 8]


def test_curves_command_needs_curve_files(tmp_path, run_cli):
    result = run_cli("curves", str(tmp_path), "-o", str(tmp_path / "c.png"))
    assert result.exit_code != 0 and "--eval-every" in result.output


def test_schedules():
    config = TrainingConfig.from_dict({"schedule": "cosine", "steps": 100, "warmup_steps": 10, "min_lr_ratio": 0.1})
    assert lr_factor(0, config) == pytest.approx(0.1 * (0.1 + 0.9 * 1.0))  # warm-up 1/10 of the cosine start
    assert lr_factor(50, config) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(100, config) == pytest.approx(0.1)
    step = TrainingConfig.from_dict({"lr_step": 10, "lr_gamma": 0.5})
    assert lr_factor(25, step) == pytest.approx(0.25)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = build_scheduler(optimizer, config)
    for _ in range(50):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.55)


@pytest.mark.parametrize("key, value, words", [
    ("optimizer", "adam", "sgd, adamw"),
    ("schedule", "linear", "step, cosine, constant"),
    ("warmup_steps", -1, ">= 0"),
    ("min_lr_ratio", 2.0, "min_lr_ratio"),
])
def test_bad_optimiser_options_are_one_line_errors(key, value, words):
    with pytest.raises(FewshotkitError, match=words):
        TrainingConfig.from_dict({key: value})


def test_adamw_trains(store, tmp_path):
    from fewshotkit.training.loop import train

    spec = tiny_spec("training.optimizer=adamw", "training.lr=1e-3", "training.schedule=cosine",
                     "training.warmup_steps=2")
    last = train(spec, store, tmp_path / "run", steps=4, device="cpu", show_progress=False)
    payload = torch.load(last, weights_only=True)
    assert payload["step"] == 4 and "exp_avg" in next(iter(payload["optimizer"]["state"].values()))


def test_user_hooks_run_after_the_built_in_ones(store, tmp_path):
    from fewshotkit.training.loop import train
    from fewshotkit.training.trainer import HookBase

    class Recorder(HookBase):
        def __init__(self) -> None:
            self.events: list[tuple[str, int]] = []

        def before_train(self) -> None:
            self.events.append(("before", self.trainer.step))

        def after_step(self) -> None:
            assert self.trainer.last is not None and torch.isfinite(self.trainer.last.loss)
            self.events.append(("step", self.trainer.step))

        def after_train(self) -> None:
            self.events.append(("after", self.trainer.step))

    recorder = Recorder()
    train(tiny_spec(), store, tmp_path / "run", steps=3, device="cpu", show_progress=False, hooks=[recorder])
    assert recorder.events == [("before", 0), ("step", 1), ("step", 2), ("step", 3), ("after", 3)]


def test_hooks_hold_the_trainer_weakly():
    """No cycle through the hooks: a trainer goes with its last reference, collector or not."""
    import gc
    import weakref

    from fewshotkit.training.trainer import HookBase, Trainer

    net = torch.nn.Linear(2, 2)
    trainer = Trainer(net, net, "alpnet", None, None, None, None, torch.device("cpu"), 1)
    hook = HookBase()
    trainer.register([hook])
    assert hook.trainer.steps == 1
    gone = weakref.ref(trainer)
    gc.disable()
    try:
        del trainer
        assert gone() is None
    finally:
        gc.enable()
