"""What a trainable component may tell the optimiser and the training log.

Any module inside a method (a backbone, pooler, classifier, or one of their submodules) may
override :meth:`Trainable.parameter_groups` to have some of its parameters optimised with their
own learning rate and weight decay, and :meth:`Trainable.monitored` to have scalars written to the
metrics log and drawn beside the Dice-vs-time curve. The training code walks every module of the
method, so a component gets both by subclassing :class:`Trainable` (the component ABCs do).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ParameterGroup:
    """Parameters optimised together.

    ``lr_scale`` multiplies ``training.lr`` (the schedule and warm-up apply on top);
    ``weight_decay`` None keeps ``training.weight_decay``. ``training.groups.NAME`` overrides both.
    """

    params: list[nn.Parameter] = field(default_factory=list)
    lr_scale: float = 1.0
    weight_decay: float | None = None


class Trainable:
    """Mixin of the component ABCs: optional parameter groups and monitored scalars."""

    def parameter_groups(self) -> dict[str, ParameterGroup]:
        """Named groups of this module's own parameters with their own optimiser settings (none by
        default: every parameter trains in the ``default`` group). Names are shared across the
        method: two components declaring ``threshold`` put their parameters in one group."""
        return {}

    def monitored(self) -> dict[str, torch.Tensor]:
        """Named scalars to log while training (e.g. a learned threshold); none by default."""
        return {}
