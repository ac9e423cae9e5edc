"""A small training loop whose behaviour lives in hooks (after detectron2's TrainerBase + HookBase).

:class:`Trainer` only draws a batch, runs the method, steps the optimiser and the schedule, and
counts steps and training seconds. Logging, checkpoints, the episode log, the weight average and
the Dice-vs-time curve are :class:`HookBase` subclasses (``fewshotkit.training.hooks``) called
around each step, so a new behaviour (early stopping, a custom metric) is a new hook, not an edit
of the loop. :meth:`Trainer.state_dict` holds everything an exact resume needs, each hook's state
under the hook's :attr:`~HookBase.name` included; a checkpoint is that state, and resuming loads it
back with :meth:`Trainer.load_state_dict`.
"""

from __future__ import annotations

import contextlib
import time
import warnings
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import torch

from fewshotkit.core.errors import FewshotkitError

if TYPE_CHECKING:
    from fewshotkit.training.streams import RandomStreams


class HookBase:
    """Called by :class:`Trainer`; ``self.trainer`` is set when the hook is registered.

    ``self.trainer`` is a weak proxy (as in detectron2): the trainer owns its hooks, and no cycle
    through them keeps a finished run's model alive.

    In one step the trainer calls ``before_step``, draws a batch, runs the forward and the
    backward pass, calls ``after_backward``, steps the optimiser and the schedule, and calls
    ``after_step``. ``after_train`` runs even when training stops with an error or an
    interruption (``trainer.interrupted``), so hooks close their files there; it runs for every
    hook, also when an earlier hook's ``after_train`` fails or its own ``before_train`` never ran.

    A hook whose :meth:`state_dict` returns a non-empty dict has it saved in every checkpoint under
    its :attr:`name` and given back to :meth:`load_state_dict` when the run resumes (before
    ``before_train``).
    """

    trainer: "Trainer"

    @property
    def name(self) -> str:
        """The key of this hook's state in a checkpoint: unique among a run's hooks that keep state."""
        return type(self).__qualname__

    def before_train(self) -> None:
        """Once, before the first step of this process (also after a resume)."""

    def before_step(self) -> None:
        """Before every step; ``trainer.step`` is the number of completed steps."""

    def after_backward(self) -> None:
        """After the backward pass, before the optimiser step: the gradients are in the parameters'
        ``.grad`` (scaled by ``trainer.scaler`` under float16 amp: ``trainer.scaler.unscale_(
        trainer.optimizer)`` before reading them). Its time counts as training time."""

    def after_step(self) -> None:
        """After every completed step; ``trainer.step`` is the number of completed steps."""

    def after_train(self) -> None:
        """Once, at the end (normal, interrupted or failed)."""

    def state_dict(self) -> dict[str, Any]:
        """What this hook must carry over a resume (tensors and plain data); empty: nothing."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back a :meth:`state_dict` from a checkpoint."""


@dataclass
class StepOutput:
    """What one step produced: the detached loss and its terms, the episodes' records, data time,
    and the learning rate the step used (:attr:`Trainer.lr` is already the next step's)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    records: list[dict[str, Any]]
    data_s: float  # drawing and augmenting the batch
    lr: float = float("nan")


@dataclass
class Trainer:
    """Runs ``steps - start_step`` optimisation steps of ``model`` on batches from ``batcher``.

    ``model`` is what the forward goes through (``method`` or its DDP wrapper); ``method`` is the
    bare module (for checkpoints). ``train_seconds`` counts only the wall time spent in steps
    (batch drawing + forward + backward + update), never hooks such as evaluation or checkpoints;
    ``train_cpu_seconds`` is the same span in CPU time of this process (all its threads), which
    other processes on a shared machine do not inflate. ``random`` holds the process's random
    streams (``sampler_rng`` is its sampler) for checkpoints.
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
    random: "RandomStreams | None" = None

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
        """The learning rate of the parameter group ``default`` (of the first group if none has that
        name) for the next step; ``last.lr`` is the one the last step used."""
        names = [group.get("name") for group in self.optimizer.param_groups]
        return float(self.scheduler.get_last_lr()[names.index("default") if "default" in names else 0])

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Train until ``steps`` or until ``should_stop()`` (then ``self.interrupted`` is True)."""
        self.method.train()
        try:
            self._call("before_train")
            while self.step < self.steps:
                if should_stop():
                    self.interrupted = True
                    break
                self._call("before_step")
                self.last = self.run_step()
                self._call("after_step")
        except BaseException:
            self._after_train(training_failed=True)
            raise
        self._after_train(training_failed=False)

    def _call(self, point: str) -> None:
        for hook in self.hooks:
            getattr(hook, point)()

    def _after_train(self, training_failed: bool) -> None:
        """Every hook's ``after_train``, each also when an earlier one fails (they close files).

        The first failure is raised once all have run, unless training itself failed: its error is
        the one to see. The other failures are warnings.
        """
        failures: list[tuple[HookBase, BaseException]] = []
        for hook in self.hooks:
            try:
                hook.after_train()
            except BaseException as exc:
                failures.append((hook, exc))
        for hook, error in failures[0 if training_failed else 1:]:
            with contextlib.suppress(Warning):  # warnings turned into errors must not replace the one raised
                warnings.warn(f"training hook '{hook.name}' failed in after_train: {error!r}", stacklevel=3)
        if failures and not training_failed:
            raise failures[0][1]

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
        lr = self.lr  # read before the schedule steps
        t0, c0 = time.perf_counter(), time.process_time()
        episode, records = self.batcher.next(self.sampler_rng)
        t1 = time.perf_counter()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            terms = self.model(episode).losses
            loss = self._weighted_loss(terms)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self._call("after_backward")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        t2 = time.perf_counter()
        self.train_seconds += t2 - t0
        self.train_cpu_seconds += time.process_time() - c0
        return StepOutput(loss.detach(), {k: v.detach() for k, v in terms.items()}, records, t1 - t0, lr)

    def _weighted_loss(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The sum of the method's loss terms, each times its ``training.loss_weights`` entry (1 if none)."""
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
        return sum(self.loss_weights.get(name, 1.0) * value for name, value in terms.items())  # type: ignore[return-value]

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs: the step, weights, optimiser, schedule, loss scaler,
        every rank's random states, the training seconds and each stateful hook's state under its
        name (``"hooks"``). A collective call under DDP: every rank makes it."""
        self.synchronize()
        return {
            "step": self.step,
            "model": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": self.random.state_dict() if self.random is not None else [],
            "train_seconds": self.train_seconds,
            "train_cpu_seconds": self.train_cpu_seconds,
            "hooks": self._hook_states(),
        }

    def _hook_states(self) -> dict[str, Any]:
        states: dict[str, Any] = {}
        for hook in self.hooks:
            state = hook.state_dict()
            if not state:
                continue
            if hook.name in states:
                raise FewshotkitError(f"two training hooks keep state under the name '{hook.name}'; "
                                      "give one of them another name (override its `name` property)")
            states[hook.name] = state
        return states

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (a checkpoint); call it after registering the hooks.

        A hook state the checkpoint holds for a hook this run does not have is left out, with a warning.
        """
        self.method.load_state_dict(state["model"])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as exc:  # the method now declares other parameter groups than the run had
            raise FewshotkitError(f"the checkpoint's optimiser state does not fit this method's parameter groups "
                                  f"({str(exc).strip().splitlines()[0]}); resume with the plugin versions and "
                                  "training.groups the run started with") from None
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.train_cpu_seconds = float(state.get("train_cpu_seconds", 0.0))
        if self.random is not None:
            self.random.load_state_dict(state["rng"], self.step)
        saved = dict(state.get("hooks") or {})
        for hook in self.hooks:
            if hook.name in saved:
                hook.load_state_dict(saved.pop(hook.name))
        for name in saved:
            warnings.warn(f"the checkpoint holds the state of a training hook '{name}' this run does not have; "
                          "that state is left out", stacklevel=2)
