"""PrototypePooler: support features + support masks -> class prototypes."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from fewshotkit.interfaces.optimization import Trainable


class PrototypePooler(Trainable, nn.Module):
    """Pools support features into prototypes, one list entry per class.

    Classes are indexed 0..N: 0 is background, 1..N the foreground classes of the episode
    (1-way episodes have N = 1). With several support slices (k-shot) the prototypes of all
    of them are pooled together. ``self.training`` selects training-time behaviour (e.g. ALP's
    larger pooling window).
    """

    @abstractmethod
    def forward(self, features: torch.Tensor, masks: torch.Tensor) -> list[torch.Tensor]:
        """Pool prototypes.

        Args:
            features: support features (S, C, h, w).
            masks: support masks (S, N + 1, H, W), float in [0, 1], one channel per class
                (background first), at image resolution H x W (poolers resize them to h x w).

        Returns:
            N + 1 tensors, entry c of shape (P_c, C) with P_c >= 1: the prototypes of class c.
            A class with no support pixels still gets at least one (fallback) prototype.
        """
