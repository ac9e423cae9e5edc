"""Classifier: query features + class prototypes -> per-class scores."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn


class Classifier(nn.Module):
    """Scores every query feature vector against the prototypes of every class."""

    @abstractmethod
    def forward(self, features: torch.Tensor, prototypes: list[torch.Tensor]) -> torch.Tensor:
        """Score query features.

        Args:
            features: query features (Q, C, h, w).
            prototypes: N + 1 tensors (P_c, C), as returned by a PrototypePooler.

        Returns:
            logits (Q, N + 1, h, w): softmax over dim 1 gives class probabilities.
        """
