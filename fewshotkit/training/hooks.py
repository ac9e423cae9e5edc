"""The training loop's behaviours as hooks: metrics log + progress bar, checkpoints, episode log.

Only rank 0 writes files; hooks that gather across DDP ranks run on every rank.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path
from typing import IO, Any, Callable, Mapping

import numpy as np
import torch

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.training import distributed as ddp
from fewshotkit.method.checkpoint import FORMAT, LAST, VERSION, save_checkpoint
from fewshotkit.training.checkpoint import prune_checkpoints
from fewshotkit.training.optim import monitored_scalars
from fewshotkit.training.trainer import HookBase, Trainer


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Checkpointer:
    """Writes ``last.pt`` (and numbered copies): the trainer's :meth:`~Trainer.state_dict`, which
    holds everything an exact resume needs, and ``extra(step)``, what describes the run then."""

    def __init__(self, directory: Path, info: ddp.DistInfo, keep: int, extra: Callable[[int], dict[str, Any]]) -> None:
        self.directory = directory
        self.info = info
        self.keep = keep
        self.extra = extra  # step -> spec text, plugin versions, run record ... at the time of saving

    def save(self, trainer: Trainer, numbered: bool) -> Path:
        """Save on rank 0 (every rank calls it: the random states are gathered); returns ``last.pt``."""
        state = trainer.state_dict()
        last = self.directory / LAST
        if self.info.is_main:
            blob = {"format": FORMAT, "version": VERSION, **state, "torch_version": str(torch.__version__),
                    **self.extra(trainer.step)}
            save_checkpoint(last, blob)
            if numbered:
                save_checkpoint(self.directory / f"step_{trainer.step:06d}.pt", blob)
                prune_checkpoints(self.directory, self.keep)
        return last


class PeriodicCheckpoint(HookBase):
    """A numbered checkpoint every ``every`` steps (the final one is written by the caller).

    Register it after every other hook: a checkpoint at step N then holds each hook's state after step N.
    """

    def __init__(self, checkpointer: Checkpointer, every: int) -> None:
        self.checkpointer = checkpointer
        self.every = every

    def after_step(self) -> None:
        if self.trainer.step % self.every == 0 and self.trainer.step < self.trainer.steps:
            self.checkpointer.save(self.trainer, numbered=True)


class MetricsLogger(HookBase):
    """Mean loss terms over every ``every`` steps -> metrics.jsonl and the progress bar, with the
    learning rate the window's last step used.

    A non-finite loss stops training with an error naming the step.
    """

    def __init__(self, path: Path | None, every: int, info: ddp.DistInfo, show_progress: bool) -> None:
        self.path = path
        self.every = every
        self.info = info
        self.show_progress = show_progress
        self.last_loss = float("nan")
        self.n = 0  # steps in the loss window
        self._resumed: dict[str, Any] | None = None  # a checkpoint's window, taken back by _reset
        self.file: IO[str] | None = None
        self.progress: Any = None  # a rich Progress, from before_train on

    def before_train(self) -> None:
        from rich.progress import TextColumn

        from fewshotkit.core.console import make_progress

        t = self.trainer
        self.file = open(self.path, "a", encoding="utf-8") if self.path is not None else None
        self.progress = make_progress(TextColumn("{task.fields[speed]} steps/s"), TextColumn("loss {task.fields[loss]}"),
                                      TextColumn("lr {task.fields[lr]}"))
        self.progress.disable = self.progress.disable or not (self.show_progress and self.info.is_main)
        self.task = self.progress.add_task("train", total=t.steps, completed=t.step, speed="-", loss="-",
                                           lr=f"{t.lr:.2e}")
        self.progress.start()
        self._reset()

    def _reset(self) -> None:
        self.window: dict[str, torch.Tensor] = {}
        self.data_s = 0.0
        self.n = 0
        self.start = time.perf_counter()
        self.start_train_s = self.trainer.train_seconds
        resumed, self._resumed = self._resumed, None
        if resumed:  # the steps of the window a checkpoint cut: the next record averages them too
            self.window = {k: torch.tensor(v, dtype=torch.float32, device=self.trainer.device)
                           for k, v in resumed["window"].items()}
            self.n, self.data_s = int(resumed["n"]), float(resumed["data_s"])
            # a checkpoint from before the window's seconds were saved: its steps count as data time only
            self.start_train_s -= float(resumed.get("train_s", self.data_s))
            self.start -= float(resumed.get("wall_s", 0.0))

    def state_dict(self) -> dict[str, Any]:
        """The loss window in progress (the steps since the last record), averaged over ranks, with its
        training and wall seconds: a resumed run's next record then averages the same steps, over the
        same time, as an uninterrupted run's. Empty between windows."""
        if not self.n:
            return {}
        window = ddp.mean_over_ranks({k: v.item() for k, v in self.window.items()}, self.info, self.trainer.device)
        return {"window": window, "n": self.n, "data_s": self.data_s,
                "train_s": self.trainer.train_seconds - self.start_train_s, "wall_s": time.perf_counter() - self.start}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._resumed = dict(state)

    def after_step(self) -> None:
        t, out = self.trainer, self.trainer.last
        assert out is not None
        self.n += 1
        self.data_s += out.data_s
        for name, value in {"loss": out.loss, **{f"loss_{k}": v for k, v in out.terms.items()}}.items():
            value = value.float()
            self.window[name] = self.window[name] + value if name in self.window else value
        if t.step % self.every == 0 or t.step == t.steps:
            t.synchronize()  # the window's device work is done: its training time is exact
            model_s = t.train_seconds - self.start_train_s - self.data_s
            values = ddp.mean_over_ranks({k: v.item() / self.n for k, v in self.window.items()}, self.info, t.device)
            self.last_loss = values["loss"]
            if not np.isfinite(self.last_loss):
                raise FewshotkitError(
                    f"the training loss became {self.last_loss} by step {t.step}; lower training.lr "
                    "(--set training.lr=...) or turn off --amp"
                )
            record = {
                "step": t.step, **{k: round(v, 6) for k, v in values.items()}, "lr": out.lr,
                "steps_per_s": round(self.n / (time.perf_counter() - self.start), 4),
                "data_s": round(self.data_s / self.n, 5), "model_s": round(model_s / self.n, 5),
                "train_s": round(t.train_seconds, 2),
                "train_cpu_s": round(t.train_cpu_seconds, 2), "time": now(),
                **monitored_scalars(t.method),
            }
            if self.file is not None:
                self.file.write(json.dumps(record) + "\n")
                self.file.flush()
            self.progress.update(self.task, speed=f"{record['steps_per_s']:.2f}", loss=f"{self.last_loss:.4f}",
                                 lr=f"{record['lr']:.2e}")
            self._reset()
        self.progress.update(self.task, completed=t.step)

    def after_train(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.file is not None:
            self.file.close()


class EpisodeLogger(HookBase):
    """Every episode's record (volume, z, segment ...) of every rank -> episodes.jsonl, flushed after
    every step (a killed run keeps the lines up to its last checkpoint, where a resume continues)."""

    def __init__(self, path: Path | None, info: ddp.DistInfo) -> None:
        self.path = path
        self.info = info
        self.file: IO[str] | None = None

    def before_train(self) -> None:
        self.file = open(self.path, "a", encoding="utf-8") if self.path is not None else None

    def after_step(self) -> None:
        t = self.trainer
        assert t.last is not None
        gathered = ddp.all_gather(t.last.records, self.info)
        if self.file is not None:
            for rank, records in enumerate(gathered):
                for index, record in enumerate(records):
                    self.file.write(json.dumps({"step": t.step, "rank": rank, "index": index, **record}) + "\n")
            self.file.flush()

    def after_train(self) -> None:
        if self.file is not None:
            self.file.close()


class StepCallback(HookBase):
    """Calls ``fn(step)`` after every step (tests use it to interrupt at a given step)."""

    def __init__(self, fn: Callable[[int], None]) -> None:
        self.fn = fn

    def after_step(self) -> None:
        self.fn(self.trainer.step)
