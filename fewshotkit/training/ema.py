"""An exponential moving average (EMA) of the weights, as a training hook (``training.ema``).

After every step ``averaged = decay * averaged + (1 - decay) * weights`` (parameters and buffers;
``torch.optim.swa_utils.AveragedModel``). The trainer's ``inference_module`` becomes the averaged
copy, so the Dice-vs-time curve scores it, and checkpoints store it under ``"ema"`` beside the
raw weights: :func:`fewshotkit.method.checkpoint.load_method` (eval, bench, segment) loads the
averaged weights, a resume continues both.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fewshotkit.training.trainer import HookBase


class WeightAverage(HookBase):
    """Keeps ``trainer.inference_module`` = the EMA of ``trainer.method`` with ``decay`` per step.

    Register it before the hooks that evaluate or save, so they see the updated average.
    ``state`` is a checkpoint's ``"ema"`` entry when resuming.
    """

    def __init__(self, decay: float, state: Mapping[str, Any] | None = None) -> None:
        self.decay = decay
        self.state = state
        self.averaged: AveragedModel | None = None

    def before_train(self) -> None:
        t = self.trainer
        self.averaged = AveragedModel(t.method, device=t.device, multi_avg_fn=get_ema_multi_avg_fn(self.decay),
                                      use_buffers=True)
        if self.state is not None:
            self.averaged.load_state_dict(dict(self.state))
        self.averaged.eval()
        t.inference_module = self.averaged.module

    def after_step(self) -> None:
        assert self.averaged is not None
        self.averaged.update_parameters(self.trainer.method)

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.averaged is None else self.averaged.state_dict()
