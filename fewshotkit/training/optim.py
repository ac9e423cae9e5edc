"""Optimiser and learning-rate schedule from a :class:`TrainingConfig`.

- ``optimizer``: ``sgd`` (the reference: momentum, weight decay, optional Nesterov) or ``adamw``
  (``betas``; ``weight_decay`` is AdamW's decoupled decay);
- ``schedule``: ``step`` (lr x ``lr_gamma`` every ``lr_step`` steps, the reference), ``cosine``
  (from lr down to ``min_lr_ratio`` x lr at the last step) or ``constant``;
- ``warmup_steps``: a linear ramp from lr / ``warmup_steps`` to lr multiplies any schedule;
- parameter groups: components declare groups of their parameters with their own learning-rate
  scale and weight decay (:class:`~fewshotkit.interfaces.optimization.ParameterGroup`, e.g. a
  learned threshold: no decay, a rate at which a scalar moves); ``training.groups.NAME`` overrides
  them; every other parameter is in the ``default`` group.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.interfaces.optimization import ParameterGroup
from fewshotkit.training.config import TrainingConfig

DEFAULT_GROUP = "default"


def declared_groups(method: torch.nn.Module) -> dict[str, ParameterGroup]:
    """The groups the method's modules declare, merged by name (trainable parameters only)."""
    groups: dict[str, ParameterGroup] = {}
    for module in method.modules():
        declare = getattr(module, "parameter_groups", None)
        for name, group in (declare() if callable(declare) else {}).items():
            if name == DEFAULT_GROUP:
                raise FewshotkitError(f"{type(module).__name__} declares a parameter group named "
                                      f"'{DEFAULT_GROUP}', which is reserved for the undeclared parameters")
            merged = groups.setdefault(name, ParameterGroup([], group.lr_scale, group.weight_decay))
            if (merged.lr_scale, merged.weight_decay) != (group.lr_scale, group.weight_decay):
                raise FewshotkitError(f"parameter group '{name}' is declared twice with different settings "
                                      f"({merged.lr_scale}, {merged.weight_decay}) and "
                                      f"({group.lr_scale}, {group.weight_decay})")
            merged.params.extend(p for p in group.params if p.requires_grad)
    owners: dict[int, str] = {}
    for name, group in groups.items():
        for p in group.params:
            if owners.setdefault(id(p), name) != name:
                raise FewshotkitError(f"a parameter is declared in two parameter groups, '{owners[id(p)]}' and "
                                      f"'{name}': a component may put each parameter in one group only")
    return {name: group for name, group in groups.items() if group.params}


def optimizer_groups(method: torch.nn.Module, config: TrainingConfig, single: bool = False) -> list[dict[str, Any]]:
    """``torch.optim`` parameter groups (with a ``name``): the declared ones, then ``default``.

    ``single``: one group of every parameter, as runs recorded without groups were trained.
    """
    everything = list(method.parameters())  # frozen ones too: the optimiser skips them, as before groups
    if single:
        return [{"name": DEFAULT_GROUP, "params": everything, "lr": config.lr, "weight_decay": config.weight_decay}]
    declared = declared_groups(method)
    unknown = sorted(set(config.groups) - set(declared) - {DEFAULT_GROUP})
    if unknown:
        from fewshotkit.core.userinput import did_you_mean

        raise FewshotkitError(f"training.groups.{unknown[0]}: this method has no parameter group '{unknown[0]}'."
                              f"{did_you_mean(unknown[0], list(declared))} Its groups: "
                              f"{', '.join([*declared, DEFAULT_GROUP])}")
    claimed = {id(p) for group in declared.values() for p in group.params}
    result = []
    for name, group in [*declared.items(),
                        (DEFAULT_GROUP, ParameterGroup([p for p in everything if id(p) not in claimed]))]:
        settings = config.groups.get(name, {})
        scale = settings.get("lr_scale", group.lr_scale)
        decay = settings.get("weight_decay", config.weight_decay if group.weight_decay is None else group.weight_decay)
        if group.params:
            result.append({"name": name, "params": group.params, "lr": config.lr * scale, "weight_decay": decay})
    return result


def monitored_scalars(method: torch.nn.Module) -> dict[str, float]:
    """The scalars the method's modules monitor (:meth:`~fewshotkit.interfaces.optimization.Trainable.monitored`)."""
    values: dict[str, float] = {}
    for module in method.modules():
        monitor = getattr(module, "monitored", None)
        if callable(monitor):
            values.update({name: round(float(value), 6) for name, value in monitor().items()})
    return values


def describe_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What run.json records of each group: name, number of parameters (elements), its learning rate
    before any schedule or warm-up (``initial_lr`` once a scheduler has wrapped the optimiser), weight decay."""
    return [{"name": g["name"], "parameters": sum(p.numel() for p in g["params"]), "lr": g.get("initial_lr", g["lr"]),
             "weight_decay": g["weight_decay"]} for g in groups]


def build_optimizer(groups: list[dict[str, Any]], config: TrainingConfig) -> torch.optim.Optimizer:
    """The configured optimiser over ``groups`` (:func:`optimizer_groups`)."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.betas[0], config.betas[1]),
                                 weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                           nesterov=config.nesterov)


def lr_factor(step: int, config: TrainingConfig) -> float:
    """The multiplier of each group's learning rate after ``step`` completed steps."""
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
