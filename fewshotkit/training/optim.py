"""Optimiser and learning-rate schedule from a :class:`TrainingConfig`.

- ``optimizer``: ``sgd`` (the reference: momentum, weight decay, optional Nesterov) or ``adamw``
  (``betas``; ``weight_decay`` is AdamW's decoupled decay);
- ``schedule``: ``step`` (lr x ``lr_gamma`` every ``lr_step`` steps, the reference), ``cosine``
  (from lr down to ``min_lr_ratio`` x lr at the last step) or ``constant``;
- ``warmup_steps``: a linear ramp from lr / ``warmup_steps`` to lr multiplies any schedule.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from fewshotkit.training.config import TrainingConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], config: TrainingConfig) -> torch.optim.Optimizer:
    """The configured optimiser over ``params``."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, betas=(config.betas[0], config.betas[1]), weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                           nesterov=config.nesterov)


def lr_factor(step: int, config: TrainingConfig) -> float:
    """The multiplier of ``config.lr`` after ``step`` completed steps."""
    if config.schedule == "cosine":
        progress = min(step / max(config.steps, 1), 1.0)
        floor = config.min_lr_ratio
        factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    elif config.schedule == "constant":
        factor = 1.0
    else:
        factor = config.lr_gamma ** (step // config.lr_step)
    if config.warmup_steps > 0 and step < config.warmup_steps:
        factor *= (step + 1) / config.warmup_steps
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """The configured schedule; the reference step schedule stays a ``StepLR`` (its old checkpoints resume)."""
    if config.schedule == "step" and config.warmup_steps == 0:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
