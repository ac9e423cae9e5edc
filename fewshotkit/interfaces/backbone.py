"""Backbone: a fully-convolutional feature extractor, with one feature level or several."""

from __future__ import annotations

import contextvars
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.interfaces.optimization import Trainable


@dataclass(frozen=True)
class FeatureLevel:
    """One feature map a backbone can hand out: ``stride`` s (features are ``ceil(H / s)``) and
    ``channels`` C."""

    stride: int
    channels: int


class Backbone(Trainable, nn.Module):
    """Image batch -> feature map (and, for methods that fuse scales, several feature maps).

    Attributes every backbone sets in ``__init__``:

    - ``in_channels``: 1 or 3 (a 1-channel slice given to a 3-channel backbone is tiled);
    - ``out_channels``: C, the feature dimension;
    - ``stride``: s, the output stride (features are ``ceil(H / s) x ceil(W / s)``).

    Feature levels: :meth:`feature_levels` lists the maps a backbone can hand out, finest first;
    the last one is what :meth:`forward` returns. A backbone with several levels overrides both
    :meth:`feature_levels` and :meth:`forward_levels`; by default there is one level.

    A backbone that starts from loaded weights sets ``weights_source`` to what run.json records of
    them (``source``, ``file``, ``sha256``, ...). A backbone class (or factory) that can load weights
    from hubs may offer ``available_weights(model=None) -> list[dict]`` for ``fewshotkit weights``
    (keys: model, pretrained, source, file, folder, cached).
    """

    in_channels: int
    out_channels: int
    stride: int
    weights_source: dict[str, Any] | None = None

    @abstractmethod
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` float (B, in_channels, H, W) -> features (B, C, H / s, W / s)."""

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Tile a (B, 1, H, W) batch to ``in_channels`` channels when the backbone wants 3."""
        if images.shape[1] == 1 and self.in_channels == 3:
            images = images.expand(-1, 3, -1, -1)
        return images

    def feature_levels(self) -> list[FeatureLevel]:
        """The levels this backbone hands out, finest first; the last is the deepest (``forward``'s)."""
        return [FeatureLevel(self.stride, self.out_channels)]

    def forward_levels(self, images: torch.Tensor, levels: Sequence[int]) -> list[torch.Tensor]:
        """Features of the requested ``levels`` (indexes into :meth:`feature_levels`, negative from
        the deepest: ``(0, -1)`` is the finest and the deepest), in the order asked, each
        (B, channels, ceil(H / stride), ceil(W / stride)), from one pass over ``images``."""
        self.check_levels(levels)
        return [self(images)]

    def check_levels(self, levels: Sequence[int]) -> list[int]:
        """``levels`` as non-negative indexes; a one-line error when one is missing or two name the
        same map (as the finest and the deepest level of a backbone with one level do)."""
        available = self.feature_levels()
        count = len(available)
        index = [level % count if -count <= level < count else None for level in levels]
        if None in index or len(set(index)) < len(index):
            strides = ", ".join(f"stride {level.stride}" for level in available)
            hint = ("give it a finer level where it has an option for it (backbone.levels=2 for 'light' and "
                    "'deeplab-resnet101'), or use a single-scale method") if count == 1 else \
                f"ask for distinct levels between {-count} and {count - 1}"
            raise FewshotkitError(f"backbone {type(self).__name__} has {count} feature level(s) ({strides}), "
                                  f"asked for levels {list(levels)}: {hint}")
        return [int(i) for i in index if i is not None]


def weights_sources(module: nn.Module) -> list[dict[str, Any]]:
    """The initial weights recorded by every backbone inside ``module`` (empty: random starts)."""
    return [m.weights_source for m in module.modules() if isinstance(m, Backbone) and m.weights_source]


_INITIAL_WEIGHTS = contextvars.ContextVar("fewshotkit_initial_weights", default=True)


@contextmanager
def without_initial_weights() -> Iterator[None]:
    """Build backbones without loading their initial weights (``backbone.weights``/``pretrained``):
    for a method whose trained weights come next from a checkpoint, so no weights file or hub cache is
    needed where a trained model is only used."""
    token = _INITIAL_WEIGHTS.set(False)
    try:
        yield
    finally:
        _INITIAL_WEIGHTS.reset(token)


def initial_weights_wanted() -> bool:
    """False inside :func:`without_initial_weights`."""
    return _INITIAL_WEIGHTS.get()
