"""An exponential moving average (EMA) of the weights, as a training hook (``training.ema``).

After every step ``averaged = decay * averaged + (1 - decay) * weights`` (parameters and buffers;
``torch.optim.swa_utils.AveragedModel``). The trainer's ``inference_module`` becomes the averaged
copy, so the Dice-vs-time curve scores it, and checkpoints store it as the hook's state (under
``"ema"``) beside the raw weights: :func:`fewshotkit.method.checkpoint.load_method` (eval, bench,
segment) loads the averaged weights, a resume continues both.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fewshotkit.method.checkpoint import EMA_KEY
from fewshotkit.training.trainer import HookBase


class WeightAverage(HookBase):
    """Keeps ``trainer.inference_module`` = the EMA of ``trainer.method`` with ``decay`` per step.

    Register it before the hooks that evaluate or save, so they see the updated average.
    """

    @property
    def name(self) -> str:
        return EMA_KEY  # the key inference reads the average from

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.averaged: AveragedModel | None = None
        self._resumed: dict[str, Any] | None = None  # a checkpoint's average, loaded in before_train

    def before_train(self) -> None:
        t = self.trainer
        self.averaged = AveragedModel(t.method, device=t.device, multi_avg_fn=get_ema_multi_avg_fn(self.decay),
                                      use_buffers=True)
        if self._resumed is not None:
            self.averaged.load_state_dict(self._resumed)
        self.averaged.eval()
        t.inference_module = self.averaged.module

    def after_step(self) -> None:
        assert self.averaged is not None
        self.averaged.update_parameters(self.trainer.method)

    def state_dict(self) -> dict[str, Any]:
        """The ``AveragedModel`` state dict (``module.*`` + ``n_averaged``); empty before training."""
        return {} if self.averaged is None else self.averaged.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._resumed = dict(state)
        if self.averaged is not None:
            self.averaged.load_state_dict(self._resumed)
