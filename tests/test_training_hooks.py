"""Training hooks: the order of the hook points within a step, and a hook's own state carried
through a checkpoint and a resume. On a tiny synthetic store."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pytest
import torch

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.training.trainer import HookBase

from conftest import pseudolabelled_store
from test_training import tiny_spec


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return pseudolabelled_store(tmp_path_factory.mktemp("hooks") / "syn.h5", min_size=100,
                                volumes=6, seed=0, slices=12, size=64)


class Recorder(HookBase):
    """Records each hook point with the step count, and what the parameters hold at each point."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.grads_at_backward: list[bool] = []
        self.unchanged_at_backward: list[bool] = []

    def _weights(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.trainer.method.parameters()]

    def before_train(self) -> None:
        self.events.append(("before_train", self.trainer.step))

    def before_step(self) -> None:
        self.events.append(("before_step", self.trainer.step))
        self.before = self._weights()

    def after_backward(self) -> None:
        self.events.append(("after_backward", self.trainer.step))
        params = [p for p in self.trainer.method.parameters() if p.requires_grad]
        self.grads_at_backward.append(any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params))
        self.unchanged_at_backward.append(all(torch.equal(a, b) for a, b in zip(self.before, self._weights())))

    def after_step(self) -> None:
        self.events.append(("after_step", self.trainer.step))

    def after_train(self) -> None:
        self.events.append(("after_train", self.trainer.step))


def test_hook_points_run_in_order_within_each_step(store, tmp_path):
    from fewshotkit.training.loop import train

    recorder = Recorder()
    train(tiny_spec(), store, tmp_path / "run", steps=2, device="cpu", show_progress=False, hooks=[recorder])
    assert recorder.events == [
        ("before_train", 0),
        ("before_step", 0), ("after_backward", 0), ("after_step", 1),
        ("before_step", 1), ("after_backward", 1), ("after_step", 2),
        ("after_train", 2),
    ]
    # after the backward pass the gradients are there and the optimiser has not stepped yet
    assert recorder.grads_at_backward == [True, True] and recorder.unchanged_at_backward == [True, True]


class LossTally(HookBase):
    """A user hook with state: how many steps it saw and the sum of their losses."""

    def __init__(self) -> None:
        self.steps_seen = 0
        self.loss_sum = torch.zeros(())
        self.loaded: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return "loss-tally"

    def after_step(self) -> None:
        assert self.trainer.last is not None
        self.steps_seen += 1
        self.loss_sum = self.loss_sum + self.trainer.last.loss.float()

    def state_dict(self) -> dict[str, Any]:
        return {"steps_seen": self.steps_seen, "loss_sum": self.loss_sum.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.loaded = dict(state)
        self.steps_seen, self.loss_sum = int(state["steps_seen"]), state["loss_sum"].clone()


def test_a_user_hooks_state_survives_a_resume(store, tmp_path, fresh_host):
    from fewshotkit.training.loop import train

    straight = LossTally()
    last = train(tiny_spec(), store, tmp_path / "a", steps=6, device="cpu", seed=2, show_progress=False,
                 hooks=[straight])
    first, resumed = LossTally(), LossTally()
    train(tiny_spec(), store, tmp_path / "b", steps=3, device="cpu", seed=2, show_progress=False, hooks=[first])
    assert torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)["hooks"]["loss-tally"][
        "steps_seen"] == 3
    train(None, None, tmp_path / "b", resume=True, steps=6, device="cpu", show_progress=False, hooks=[resumed])
    assert resumed.loaded is not None and resumed.loaded["steps_seen"] == 3
    assert resumed.steps_seen == straight.steps_seen == 6
    assert torch.equal(resumed.loss_sum, straight.loss_sum)  # the resumed run continued exactly
    saved = torch.load(last, weights_only=True)["hooks"]["loss-tally"]
    assert saved["steps_seen"] == 6 and torch.equal(saved["loss_sum"], straight.loss_sum)

    # resumed without the hook: its state is left out, with a warning naming it
    with pytest.warns(UserWarning, match="training hook 'loss-tally' this run does not have"):
        train(None, None, tmp_path / "b", resume=True, steps=7, device="cpu", show_progress=False)


def test_two_hooks_keeping_state_under_one_name_are_refused(store, tmp_path):
    from fewshotkit.training.loop import train

    with pytest.raises(FewshotkitError, match="two training hooks keep state under the name 'loss-tally'"):
        train(tiny_spec(), store, tmp_path / "twice", steps=0, device="cpu", show_progress=False,
              hooks=[LossTally(), LossTally()])


def test_a_periodic_checkpoint_holds_the_user_hooks_state_after_its_step(store, tmp_path, fresh_host):
    from fewshotkit.training.loop import train

    tally = LossTally()
    out = tmp_path / "run"
    train(tiny_spec(), store, out, steps=7, device="cpu", show_progress=False, hooks=[tally])  # a checkpoint at 5
    saved = torch.load(out / "checkpoints" / "step_000005.pt", weights_only=True)
    assert saved["step"] == 5 and saved["hooks"]["loss-tally"]["steps_seen"] == 5


def test_metrics_log_the_learning_rate_their_step_used(store, tmp_path, fresh_host):
    """lr 0.01 for steps 1-5, halved for steps 6-10: the record at step 5 says 0.01."""
    import json

    from fewshotkit.training.loop import train

    out = tmp_path / "run"
    train(tiny_spec("training.lr_step=5", "training.lr_gamma=0.5"), store, out, steps=10, device="cpu",
          show_progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["lr"]) for r in records] == [(5, pytest.approx(0.01)), (10, pytest.approx(0.005))]


class Sleeper(HookBase):
    """Makes every step take at least ``seconds`` of training time (after_backward counts as training)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def after_backward(self) -> None:
        import time

        time.sleep(self.seconds)


def test_the_first_metrics_record_after_a_resume_times_its_whole_window(store, tmp_path, fresh_host):
    """A run stopped at step 6 within the window of steps 5-8, resumed: the record at step 8 counts
    the training and wall seconds of steps 5 and 6 too."""
    import json
    import signal

    from fewshotkit.training.loop import train

    def interrupt(step: int) -> None:
        if step == 6:
            signal.raise_signal(signal.SIGINT)

    spec, out = tiny_spec("training.log_every=4", "training.checkpoint_every=100"), tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(spec, store, out, steps=8, device="cpu", show_progress=False, on_step=interrupt, hooks=[Sleeper(0.1)])
    train(None, None, out, resume=True, device="cpu", show_progress=False, hooks=[Sleeper(0.1)])
    first, second = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert (first["step"], second["step"]) == (4, 8)
    window_s = second["train_s"] - first["train_s"]  # 4 steps, each >= 0.1 s
    assert 4 * (second["data_s"] + second["model_s"]) == pytest.approx(window_s, abs=0.03)
    # wall time holds the training time (train_s is logged to 0.01 s, hence the margin)
    assert second["steps_per_s"] <= 4 / (window_s - 0.02)


def test_the_episode_log_is_on_disk_after_every_step(store, tmp_path, fresh_host):
    """A run killed after a checkpoint keeps every episode line up to it (resume trims only later ones)."""
    from fewshotkit.training.loop import train

    out, seen = tmp_path / "run", []

    class Reader(HookBase):
        def after_step(self) -> None:
            seen.append(len((out / "episodes.jsonl").read_text().splitlines()))

    train(tiny_spec(), store, out, steps=3, device="cpu", show_progress=False, log_episodes=True, hooks=[Reader()])
    assert seen == [1, 2, 3]


def test_the_built_in_hooks_finish_when_they_never_started():
    from fewshotkit.training.distributed import DistInfo
    from fewshotkit.training.hooks import EpisodeLogger, MetricsLogger

    MetricsLogger(None, 10, DistInfo(), show_progress=False).after_train()
    EpisodeLogger(None, DistInfo()).after_train()


class Closes(HookBase):
    def __init__(self) -> None:
        self.closed = False

    def after_train(self) -> None:
        self.closed = True


class FailsToClose(HookBase):
    def after_train(self) -> None:
        raise RuntimeError("could not close")


class FailsAtStep(HookBase):
    def after_step(self) -> None:
        raise ValueError("the step went wrong")


def test_every_hook_finishes_when_one_fails_to(store, tmp_path, fresh_host):
    from fewshotkit.training.loop import train

    closes = Closes()
    with pytest.raises(RuntimeError, match="could not close"):
        train(tiny_spec(), store, tmp_path / "a", steps=1, device="cpu", show_progress=False,
              hooks=[FailsToClose(), closes])
    assert closes.closed


def test_a_failure_to_finish_does_not_hide_the_trainings_own_error(store, tmp_path, fresh_host):
    from fewshotkit.training.loop import train

    closes = Closes()
    with pytest.raises(ValueError, match="the step went wrong"), \
            pytest.warns(UserWarning, match="'FailsToClose' failed in after_train: RuntimeError"):
        train(tiny_spec(), store, tmp_path / "b", steps=2, device="cpu", show_progress=False,
              hooks=[FailsAtStep(), FailsToClose(), closes])
    assert closes.closed
