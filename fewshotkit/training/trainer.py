"""A small training loop whose behaviour lives in hooks (after detectron2's TrainerBase + HookBase).

:class:`Trainer` only draws a batch, runs the method, steps the optimiser and the schedule, and
counts steps and training seconds. Logging, checkpoints, the episode log and the Dice-vs-time
curve are :class:`HookBase` subclasses (``fewshotkit.training.hooks``) called around each step,
so a new behaviour (EMA, early stopping, a custom metric) is a new hook, not an edit of the loop.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from fewshotkit.core.errors import FewshotkitError


class HookBase:
    """Called by :class:`Trainer`; ``self.trainer`` is set when the hook is registered.

    ``self.trainer`` is a weak proxy (as in detectron2): the trainer owns its hooks, and no cycle
    through them keeps a finished run's model alive.

    ``after_train`` runs even when training stops with an error or an interruption
    (``trainer.interrupted``), so hooks close their files there.
    """

    trainer: "Trainer"

    def before_train(self) -> None:
        """Once, before the first step of this process (also after a resume)."""

    def after_step(self) -> None:
        """After every completed step; ``trainer.step`` is the number of completed steps."""

    def after_train(self) -> None:
        """Once, at the end (normal, interrupted or failed)."""


@dataclass
class StepOutput:
    """What one step produced: the detached loss and its terms, the episodes' records, data time."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    records: list[dict[str, Any]]
    data_s: float  # drawing and augmenting the batch


@dataclass
class Trainer:
    """Runs ``steps - start_step`` optimisation steps of ``model`` on batches from ``batcher``.

    ``model`` is what the forward goes through (``method`` or its DDP wrapper); ``method`` is the
    bare module (for checkpoints). ``train_seconds`` counts only the wall time spent in steps
    (batch drawing + forward + backward + update), never hooks such as evaluation or checkpoints;
    ``train_cpu_seconds`` is the same span in CPU time of this process (all its threads), which
    other processes on a shared machine do not inflate.
    """

    model: torch.nn.Module
    method: torch.nn.Module
    method_name: str
    optimizer: torch.optim.Optimizer
    scheduler: Any
    batcher: Any
    sampler_rng: np.random.Generator
    device: torch.device
    steps: int
    start_step: int = 0
    train_seconds: float = 0.0
    train_cpu_seconds: float = 0.0
    loss_weights: dict[str, float] = field(default_factory=dict)
    use_amp: bool = False
    amp_dtype: torch.dtype = torch.float16
    scaler: Any = None
    hooks: list[HookBase] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.step = self.start_step
        self.interrupted = False
        self.last: StepOutput | None = None
        self.inference_module: torch.nn.Module = self.method  # what evaluation uses (an EMA hook swaps it)
        if self.scaler is None:
            self.scaler = torch.amp.GradScaler("cuda", enabled=False)

    def register(self, hooks: Sequence[HookBase]) -> None:
        for hook in hooks:
            hook.trainer = weakref.proxy(self)
            self.hooks.append(hook)

    @property
    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Train until ``steps`` or until ``should_stop()`` (then ``self.interrupted`` is True)."""
        self.method.train()
        try:
            for hook in self.hooks:
                hook.before_train()
            while self.step < self.steps:
                if should_stop():
                    self.interrupted = True
                    break
                self.last = self.run_step()
                for hook in self.hooks:
                    hook.after_step()
        finally:
            for hook in self.hooks:
                hook.after_train()

    def synchronize(self) -> None:
        """Wait for the device's queued work and count the wait as training time.

        Steps do not synchronise (that would stall a GPU every step just to time it), so on CUDA a
        step's seconds are its launch time; hooks call this before they read ``train_seconds`` or
        use the device themselves, which makes the total exact at every point where it is read.
        """
        if self.device.type == "cuda":
            t0 = time.perf_counter()
            torch.cuda.synchronize(self.device)
            self.train_seconds += time.perf_counter() - t0

    def run_step(self) -> StepOutput:
        """One optimisation step on one batch of episodes."""
        t0, c0 = time.perf_counter(), time.process_time()
        episode, records = self.batcher.next(self.sampler_rng)
        t1 = time.perf_counter()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            terms = self.model(episode).losses
            if not terms:
                raise FewshotkitError(
                    f"method '{self.method_name}' returned no loss terms in training mode; it cannot be trained"
                )
            unknown = set(self.loss_weights) - set(terms)
            if unknown:
                raise FewshotkitError(
                    f"training.loss_weights names {', '.join(sorted(unknown))}, but method '{self.method_name}' "
                    f"returns the loss terms {', '.join(sorted(terms))}"
                )
            loss = sum(self.loss_weights.get(name, 1.0) * value for name, value in terms.items())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        t2 = time.perf_counter()
        self.train_seconds += t2 - t0
        self.train_cpu_seconds += time.process_time() - c0
        return StepOutput(loss.detach(), {k: v.detach() for k, v in terms.items()}, records, t1 - t0)
