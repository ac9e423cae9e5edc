"""Method: a whole few-shot segmenter (composed from parts, or monolithic)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Episode:
    """A batch of B few-shot episodes with S support and Q query slices each, N foreground ways.

    - ``support_images``: float (B, S, 1, H, W)
    - ``support_masks``: float (B, S, N + 1, H, W), one-hot per class, background first
    - ``query_images``: float (B, Q, 1, H, W)
    - ``query_labels``: long (B, Q, H, W) in 0..N, or None at inference
    """

    support_images: torch.Tensor
    support_masks: torch.Tensor
    query_images: torch.Tensor
    query_labels: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Episode":
        labels = self.query_labels
        return Episode(self.support_images.to(device, non_blocking=non_blocking),
                       self.support_masks.to(device, non_blocking=non_blocking),
                       self.query_images.to(device, non_blocking=non_blocking),
                       None if labels is None else labels.to(device, non_blocking=non_blocking))


@dataclass
class MethodOutput:
    """``logits`` (B, Q, N + 1, H, W) at image resolution; ``losses`` named scalar terms."""

    logits: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def loss(self) -> torch.Tensor:
        return sum(self.losses.values())  # type: ignore[return-value]


class Method(nn.Module):
    """A few-shot segmenter.

    ``forward(episode)`` returns logits for the query slices; when ``episode.query_labels`` is
    given and the module is in training mode it also returns the training loss terms (e.g.
    ``{"ce": ..., "align": ...}``) in ``MethodOutput.losses``.
    """

    @abstractmethod
    def forward(self, episode: Episode) -> MethodOutput:
        """Segment the queries of ``episode``: see :class:`Episode` and :class:`MethodOutput`."""
