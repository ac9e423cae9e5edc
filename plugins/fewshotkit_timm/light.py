"""A light encoder for training from scratch on a CPU.

Design (for ~1 h of 2-core training without pretrained weights):
- GroupNorm, not BatchNorm: an episode batch is 2 slices, too few for batch statistics, and
  GroupNorm behaves the same in training and inference;
- residual blocks whose last norm starts at zero, so each block starts as the identity and the
  net trains quickly from scratch;
- output stride 8 with dilations 1, 2, 4 in the last stage: a ~250 px receptive field at low cost;
- widths 32 / 64 / 128 (~1.1 M parameters), projected to ``out_channels`` by a 1x1 conv;
- two levels for the dual-scale methods, either the earlier stage at half the output stride
  (``fine_stage=2``) or, as Q-Net reads ResNet's layer3 and layer4, the full third stage at stride
  4 and a strided fourth stage (width 256) on top at stride 8 (``fine_stage=3``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from fewshotkit import FewshotkitError
from fewshotkit.interfaces.backbone import Backbone, FeatureLevel


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(min(8, channels // 4), channels)


def _conv_norm_act(cin: int, cout: int, norm: str, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), _norm(norm, cout), nn.ReLU(inplace=True)
    )


class _ResBlock(nn.Module):
    """Two 3x3 convs (dilation ``d``) with an identity shortcut; the second norm starts at zero."""

    def __init__(self, channels: int, norm: str, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.norm1 = _norm(norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.norm2 = _norm(norm, channels)
        nn.init.zeros_(self.norm2.weight)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm1(self.conv1(x)))
        return self.act(x + self.norm2(self.conv2(y)))


class LightEncoder(Backbone):
    """A small dilated residual encoder: (B, in_channels, H, W) -> (B, out_channels, H/s, W/s).

    Options:
        out_channels: C, the feature dimension.
        in_channels: 1 or 3 input channels.
        width: channels of the first stage (x2, x4 later); a multiple of 4, >= 8.
        output_stride: 4 or 8 (later stages are dilated instead of strided).
        norm: "group" (GroupNorm, batch-size independent) or "batch".
        levels: 1 (the deepest features only) or 2 (also a level at half the output stride,
            projected to ``out_channels`` by its own 1x1 conv), for methods that fuse two scales.
        fine_stage: with ``levels=2``, the stage that gives the finer level. 2: the second stage
            at output stride 8, the stem at 4 (the earlier form, shallow: ~27 px receptive field
            at stride 4). 3 (``output_stride`` 8 only): the full third stage at stride 4, then a
            fourth stage (a strided 3x3 conv to ``8 * width`` channels and a residual block of
            dilation 2) gives the deepest level at stride 8, as ResNet's layer3 and layer4 in Q-Net.
    """

    def __init__(
        self,
        out_channels: int = 256,
        in_channels: int = 1,
        width: int = 32,
        output_stride: int = 8,
        norm: str = "group",
        levels: int = 1,
        fine_stage: int = 2,
    ) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise FewshotkitError(f"option 'backbone.in_channels' must be 1 or 3, got {in_channels!r}")
        if output_stride not in (4, 8):
            raise FewshotkitError(f"option 'backbone.output_stride' must be 4 or 8, got {output_stride!r}")
        if norm not in ("group", "batch"):
            raise FewshotkitError(f"option 'backbone.norm' must be 'group' or 'batch', got {norm!r}")
        if not isinstance(width, int) or width < 8 or width % 4:
            raise FewshotkitError(f"option 'backbone.width' must be a multiple of 4, >= 8, got {width!r}")
        if levels not in (1, 2) or isinstance(levels, bool):
            raise FewshotkitError(f"option 'backbone.levels' must be 1 or 2, got {levels!r}")
        if fine_stage not in (2, 3) or isinstance(fine_stage, bool) or (fine_stage == 3 and output_stride != 8):
            raise FewshotkitError(f"option 'backbone.fine_stage' must be 2, or 3 with backbone.output_stride=8, "
                                  f"got {fine_stage!r} (output_stride {output_stride!r})")
        w1, w2, w3 = width, 2 * width, 4 * width
        deep_stage = levels == 2 and fine_stage == 3
        self.stem = nn.Sequential(_conv_norm_act(in_channels, w1, norm, 2), _conv_norm_act(w1, w1, norm))
        self.stage2 = nn.Sequential(_conv_norm_act(w1, w2, norm, 2), _ResBlock(w2, norm))
        self.stage3 = nn.Sequential(
            _conv_norm_act(w2, w3, norm, 2 if output_stride == 8 and not deep_stage else 1),
            *(_ResBlock(w3, norm, d) for d in (1, 2, 4)),
        )
        # only built when asked for, so the other forms keep their parameters (and their runs load)
        self.stage4 = nn.Sequential(_conv_norm_act(w3, 2 * w3, norm, 2), _ResBlock(2 * w3, norm, 2)) \
            if deep_stage else None
        self.proj = nn.Conv2d(2 * w3 if deep_stage else w3, out_channels, 1, bias=False)
        fine_width = w3 if deep_stage else w2 if output_stride == 8 else w1
        self.fine_proj = nn.Conv2d(fine_width, out_channels, 1, bias=False) if levels == 2 else None
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = output_stride

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, in_channels, H, W) -> features (B, out_channels, H / stride, W / stride)."""
        deep = self.stage3(self.stage2(self.stem(images)))
        return self.proj(deep if self.stage4 is None else self.stage4(deep))

    def feature_levels(self) -> list[FeatureLevel]:
        """[the finer level (stride / 2), the deepest] with ``levels=2``; else the deepest only."""
        deepest = FeatureLevel(self.stride, self.out_channels)
        return [FeatureLevel(self.stride // 2, self.out_channels), deepest] if self.fine_proj is not None \
            else [deepest]

    def forward_levels(self, images: torch.Tensor, levels: Sequence[int]) -> list[torch.Tensor]:
        """The requested levels (see :meth:`Backbone.forward_levels`) from one pass."""
        index = self.check_levels(levels)
        if self.fine_proj is None:
            return [self(images)]
        stem = self.stem(images)
        mid = self.stage2(stem)
        maps: dict[int, torch.Tensor] = {}
        if self.stage4 is not None:  # fine: the third stage at stride 4; deep: the fourth on top of it
            third = self.stage3(mid)
            maps[0] = self.fine_proj(third)
            if 1 in index:
                maps[1] = self.proj(self.stage4(third))
            return [maps[i] for i in index]
        if 0 in index:
            maps[0] = self.fine_proj(mid if self.stride == 8 else stem)
        if 1 in index:  # the last stage only when asked for
            maps[1] = self.proj(self.stage3(mid))
        return [maps[i] for i in index]
