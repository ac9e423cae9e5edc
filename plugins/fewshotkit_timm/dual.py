"""Q-Net's two-level ResNet-101: layer3 at output stride 4 and layer4 at 8, each reduced by a 1x1 conv.

Q-Net (Shen et al. 2023) dilates layer2 and layer3 instead of layer3 and layer4 (torchvision's
``replace_stride_with_dilation=[True, True, False]``), so layer3 (1024 channels) stays at stride 4
(64 x 64 for a 256 x 256 slice) and layer4 (2048 channels) is at stride 8 (32 x 32); each goes
through its own bias-free 1x1 conv to ``out_channels``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from fewshotkit import FewshotkitError
from fewshotkit.interfaces.backbone import Backbone, FeatureLevel


class DualLevelResNet101(Backbone):
    """ResNet-101 handing out two levels: [layer3 at stride 4, layer4 at stride 8] (``forward``: layer4).

    ``weights``: a local torchvision ``deeplabv3_resnet101`` (COCO) or ResNet-101 checkpoint; its
    ``fc`` is not used (the threshold head lives in the method). ``pretrained``: the same from a
    hub's cache (coco, imagenet, tv_in1k; see :mod:`fewshotkit_timm.hubs`).
    """

    def __init__(self, out_channels: int = 256, in_channels: int = 3, weights: str | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__()
        from torchvision.models import resnet101

        from fewshotkit_timm.weights import initial_weights

        if in_channels not in (1, 3):
            raise FewshotkitError(f"option 'backbone.in_channels' must be 1 or 3, got {in_channels!r}")
        if not isinstance(out_channels, int) or out_channels < 1:
            raise FewshotkitError(f"option 'backbone.out_channels' must be a positive integer, got {out_channels!r}")
        body = resnet101(weights=None, replace_stride_with_dilation=[True, True, False])
        if in_channels == 1:
            body.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
        del body.fc, body.avgpool
        if pretrained and weights:
            raise FewshotkitError("options 'backbone.weights' and 'backbone.pretrained': give one of them, not both")
        self.weights_source = initial_weights(body, "resnet101", in_channels, weights, pretrained)
        self.body = body
        self.fine_proj = nn.Conv2d(1024, out_channels, 1, bias=False)
        self.proj = nn.Conv2d(2048, out_channels, 1, bias=False)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = 8

    def _layer3(self, images: torch.Tensor) -> torch.Tensor:
        b = self.body
        x = b.maxpool(b.relu(b.bn1(b.conv1(images))))
        return b.layer3(b.layer2(b.layer1(x)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, in_channels, H, W) -> layer4 features (B, out_channels, H / 8, W / 8)."""
        return self.proj(self.body.layer4(self._layer3(images)))

    def feature_levels(self) -> list[FeatureLevel]:
        """[layer3 at stride 4, layer4 at stride 8], each reduced to ``out_channels``."""
        return [FeatureLevel(4, self.out_channels), FeatureLevel(8, self.out_channels)]

    def forward_levels(self, images: torch.Tensor, levels: Sequence[int]) -> list[torch.Tensor]:
        """The requested levels (see :meth:`Backbone.forward_levels`) from one pass."""
        index = self.check_levels(levels)
        mid = self._layer3(images)
        maps = {0: self.fine_proj(mid)} if 0 in index else {}
        if 1 in index:  # layer4 only when asked for
            maps[1] = self.proj(self.body.layer4(mid))
        return [maps[i] for i in index]
