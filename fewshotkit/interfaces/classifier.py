"""Classifier: query features + class prototypes -> per-class scores."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.interfaces.optimization import Trainable


class Classifier(Trainable, nn.Module):
    """Scores every query feature vector against the prototypes of every class.

    ``max_ways``: the most foreground classes N one episode may have (None: any N);
    :meth:`check_ways` raises for more. Methods call :meth:`setup` once with the feature dimension
    and add :meth:`auxiliary_losses` to their training losses.
    """

    max_ways: int | None = None

    @abstractmethod
    def forward(self, features: torch.Tensor, prototypes: list[torch.Tensor]) -> torch.Tensor:
        """Score query features.

        Args:
            features: query features (Q, C, h, w).
            prototypes: N + 1 tensors (P_c, C), as returned by a PrototypePooler.

        Returns:
            logits (Q, N + 1, h, w): softmax over dim 1 gives class probabilities.
        """

    def setup(self, channels: int) -> None:
        """Called once by the composing method with the feature dimension C, before training starts
        (before any optimiser sees the parameters): classifiers with learned heads build them here."""

    def auxiliary_losses(self) -> dict[str, torch.Tensor]:
        """Extra named scalar training-loss terms (e.g. a threshold regulariser); none by default."""
        return {}

    def check_ways(self, ways: int) -> None:
        """Raise a one-line FewshotkitError if an episode with ``ways`` foreground classes is unsupported."""
        if self.max_ways is not None and ways > self.max_ways:
            raise FewshotkitError(
                f"classifier {type(self).__name__} scores at most {self.max_ways} foreground class(es) per "
                f"episode, got {ways}: use {self.max_ways}-way episodes or a classifier without this limit "
                "(e.g. cosine-softmax)"
            )
