"""Backbone: a fully-convolutional feature extractor."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from fewshotkit.interfaces.optimization import Trainable


class Backbone(Trainable, nn.Module):
    """Image batch -> feature map.

    Attributes every backbone sets in ``__init__``:

    - ``in_channels``: 1 or 3 (a 1-channel slice given to a 3-channel backbone is tiled);
    - ``out_channels``: C, the feature dimension;
    - ``stride``: s, the output stride (features are ``ceil(H / s) x ceil(W / s)``).
    """

    in_channels: int
    out_channels: int
    stride: int

    @abstractmethod
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` float (B, in_channels, H, W) -> features (B, C, H / s, W / s)."""

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Tile a (B, 1, H, W) batch to ``in_channels`` channels when the backbone wants 3."""
        if images.shape[1] == 1 and self.in_channels == 3:
            images = images.expand(-1, 3, -1, -1)
        return images
